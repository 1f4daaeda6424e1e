"""Storage URLs, and creating, resuming and extending the Optuna study behind a spec.

Storage URLs: any Optuna RDB URL (``sqlite:///orca-ablate.db``, the default,
relative to the working directory; ``postgresql://...``), or a journal file:
``journal:///abs/path/study.log``, ``journal:relative/path.log``, or a plain path
ending in ``.log`` or ``.jsonl``. Optuna's own CLI and optuna-dashboard open a
journal file when given its plain path.

A study remembers its spec (study user attrs ``spec``, ``factors``,
``base_config``). Running a spec against an existing study continues it when
the spec is the same or only adds tasks, seeds, levels or search slots, and is
refused otherwise. Optuna requires a parameter's CategoricalDistribution to be
the same in every trial of a study, so adding levels rewrites the study: its
trials are copied to ``NAME.extending``, the study is re-created with the wider
choices and the trials copied back, then the copy is deleted. A run killed in
the middle finds the copy and finishes or undoes the rewrite.

Database servers (PostgreSQL) are opened through ``_database``: connection errors
become one clear line with the password masked, and calls interrupted by a
dropped connection are retried.

Artifacts (reports, figures) go to a directory recorded in the study's user attr
``artifact_dir``: ``--artifact-dir`` when given, else, for a SQLite or journal
file, ``<file stem>-artifacts/`` beside the file. A database server has no such
place, so there it must be given once (a directory every host can reach).
"""

from __future__ import annotations

import difflib
import functools
import socket
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cells import param_distributions
from ._database import StorageError, mask_url, open_server_storage
from ._rdb_direct import study_lock
from ._spec import SpecError, StudySpec

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = [
    "DEFAULT_STORAGE",
    "StorageError",
    "compare_specs",
    "default_artifact_dir",
    "is_server_url",
    "journal_path",
    "load_study",
    "mask_url",
    "open_storage",
    "prepare_study",
    "record_artifact_dir",
    "stored_spec",
]

DEFAULT_STORAGE = "sqlite:///orca-ablate.db"
"""Default ``--storage``: a SQLite file in the working directory."""

JOURNAL_SUFFIXES = (".log", ".jsonl")
EXTENDING_SUFFIX = ".extending"
"""Name suffix of the temporary copy a study extension makes."""
SQLITE_TIMEOUT_S = 60
"""How long a SQLite writer waits for a lock (readers such as the dashboard hold it briefly)."""
SQLITE_WAL = True
"""Open SQLite files in WAL mode with synchronous=NORMAL (see ``_connect_sqlite``)."""


def journal_path(url: str) -> Path | None:
    """Return the file of a journal-storage URL, or None when ``url`` is not one."""
    if url.startswith("journal:"):
        rest = url[len("journal:"):]
        rest = rest[2:] if rest.startswith("//") else rest
        if not rest:
            raise StorageError(f"--storage {url!r}: name the file, e.g. journal:///abs/path/study.log")
        return Path(rest)
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return Path(url)
    return None


def open_storage(url: str | None = None, *, must_exist: bool = False) -> BaseStorage:
    """Return the Optuna storage behind a URL (see the module docstring for the forms).

    With ``must_exist``, a SQLite or journal file that does not exist is an error
    rather than created (for commands that only read).
    """
    import optuna
    from optuna.storages import RDBStorage
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = url or DEFAULT_STORAGE
    path = journal_path(url)
    if path is not None:
        if not path.parent.is_dir():
            raise StorageError(f"--storage {url!r}: directory {str(path.parent)!r} does not exist")
        if must_exist and not path.is_file():
            raise StorageError(f"--storage {url!r}: no such journal file")
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise StorageError(f"--storage {url!r}: expected an Optuna storage URL (sqlite:///FILE.db, "
                           "postgresql://USER@HOST/DB) or a journal file (journal:///PATH.log, or a path "
                           f"ending in {' or '.join(JOURNAL_SUFFIXES)})")
    if is_server_url(url):
        return open_server_storage(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        file = make_url(url).database or ""
        if file and file != ":memory:":
            if not Path(file).resolve().parent.is_dir():
                raise StorageError(f"--storage {url!r}: directory of {file!r} does not exist")
            if must_exist and not Path(file).is_file():
                raise StorageError(f"--storage {url!r}: no such SQLite file {str(Path(file).resolve())!r}")
            kwargs["creator"] = functools.partial(_connect_sqlite, file)
    from sqlalchemy.exc import IntegrityError

    for attempt in range(3):
        try:
            rdb = RDBStorage(url, engine_kwargs=kwargs)
            break
        except IntegrityError:
            # Two processes creating a fresh file at once both insert Optuna's schema version;
            # the loser finds the tables there when it tries again.
            if attempt == 2:
                raise
            time.sleep(0.2)
        except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as exc:
            raise StorageError(f"--storage {url!r}: cannot open it ({type(exc).__name__}: {exc})") from None
    return optuna.storages.get_storage(rdb)


def is_server_url(url: str | None) -> bool:
    """Return whether ``url`` names a database server (PostgreSQL, ...) rather than a file."""
    url = url or DEFAULT_STORAGE
    return "://" in url and journal_path(url) is None and not url.startswith("sqlite")


def default_artifact_dir(url: str | None) -> Path | None:
    """Return ``<file stem>-artifacts`` beside a SQLite or journal file, or None for a database server."""
    url = url or DEFAULT_STORAGE
    path = journal_path(url)
    if path is None and url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        path = Path(database) if database and database != ":memory:" else None
    if path is None:
        return None
    path = path.resolve()
    return path.with_name(f"{path.stem}-artifacts")


def record_artifact_dir(study: optuna.Study, directory: str | Path) -> str | None:
    """Record ``directory`` (made absolute) as the study's ``artifact_dir``; return the one it replaced, if any."""
    new = str(Path(directory).expanduser().resolve())
    old = study.user_attrs.get("artifact_dir")
    if old != new:
        study.set_user_attr("artifact_dir", new)
    return old if isinstance(old, str) and old != new else None


def _connect_sqlite(file: str) -> sqlite3.Connection:
    """Return a SQLite connection in WAL mode with synchronous=NORMAL and a long lock timeout.

    In WAL mode a commit appends to the write-ahead log without an fsync
    (measured here: about 15 ms -> under 1 ms per write, and half the time to
    create a fresh file). Every committed write survives the process being
    killed (SIGKILL); only an OS crash or power loss can lose the last ones. WAL
    needs a local filesystem (not NFS); readers such as optuna-dashboard need
    write access to the directory for the -wal/-shm files.
    """
    connection = sqlite3.connect(file, timeout=SQLITE_TIMEOUT_S, check_same_thread=False)
    if SQLITE_WAL:
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # persistent in the file; a no-op when already set
        except sqlite3.OperationalError:
            pass  # another process holds a rollback-journal file open; keep its mode for now
        connection.execute("PRAGMA synchronous=NORMAL")  # per connection
    return connection


def load_study(storage: BaseStorage, study_name: str | None) -> optuna.Study:
    """Return an existing study; with no name, the only study in the storage."""
    import optuna

    names = optuna.get_all_study_names(storage)
    names = [n for n in names if not n.endswith(EXTENDING_SUFFIX)]
    if study_name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StorageError(f"name the study with --study-name (studies in this storage: {listing})")
        study_name = names[0]
    if study_name not in names:
        hint = difflib.get_close_matches(study_name, names, n=1)
        fix = f"; did you mean {hint[0]}?" if hint else f" (studies here: {', '.join(names) or 'none'})"
        raise StorageError(f"no study named {study_name!r} in this storage{fix}")
    return optuna.load_study(study_name=study_name, storage=storage)


def stored_spec(study: optuna.Study) -> StudySpec:
    """Return the spec a study was created from; raise SpecError for a study orca-ablate did not create."""
    spec = study.user_attrs.get("spec")
    if not isinstance(spec, Mapping):
        raise SpecError(f"study {study.study_name!r} was not created by orca-ablate run (it has no 'spec' "
                        "user attribute); choose another --study-name")
    return StudySpec.from_dict(spec, source=f"study {study.study_name!r}")


def prepare_study(storage: BaseStorage, spec: StudySpec, study_name: str) -> optuna.Study:
    """Return the study for ``spec``: created, resumed, or extended with new tasks, seeds or levels.

    Raises SpecError when the spec changes what the study's existing cells mean
    (factors, base, metric, search), or extends it while attempts are running.
    """
    import optuna

    _recover_extension(storage, study_name)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=spec.direction,
                                load_if_exists=True)
    if "spec" not in study.user_attrs:
        if study.get_trials(deepcopy=False):
            stored_spec(study)  # raises: not ours
        _write_attrs(study, spec)
        return study
    old = stored_spec(study)
    compare_specs(old, spec, study_name, study.user_attrs.get("base_config"))
    if old == spec:
        return study
    before, after = param_distributions(old), param_distributions(spec)
    if any(after[name] != dist for name, dist in before.items()):  # wider choices: rewrite the trials
        return _extend(storage, study, spec)
    _write_attrs(study, spec)
    return study


def compare_specs(old: StudySpec, new: StudySpec, study: str, old_base: Mapping[str, Any] | None = None) -> None:
    """Raise SpecError unless ``new`` equals ``old`` or only adds tasks, seeds, levels or slots.

    ``old_base`` is the study's resolved base config (flat path -> value) as recorded
    at creation; it catches a base that changed through harness defaults too.
    """
    fix = f"; run the new spec as a new study with --study-name, or keep {study!r}'s settings"
    if set(old.factor_paths) != set(new.factor_paths):
        added = sorted(set(new.factor_paths) - set(old.factor_paths))
        removed = sorted(set(old.factor_paths) - set(new.factor_paths))
        raise SpecError(f"factors: study {study!r} varies {old.factor_paths}, this spec varies "
                        f"{new.factor_paths} (added {added}, removed {removed}); a study's factors cannot "
                        f"change{fix}")
    skip = {"task", "seed", *new.factor_paths, *(d.path for d in new.search)}
    before = dict(old_base) if old_base is not None else _flat(old.base_config().to_dict())
    after = _flat(new.base_config().to_dict())
    changed = [p for p in after if p in before and p not in skip and before[p] != after[p]]
    if changed:
        shown = ", ".join(f"{p} (study: {before[p]!r}, this spec: {after[p]!r})" for p in changed[:4])
        raise SpecError(f"base: differs from study {study!r} at {shown}; cells run with different fixed "
                        f"settings are not comparable (the value comes from base:, --set or the harness "
                        f"defaults){fix}")
    for key in ("metric", "direction", "sampler"):
        if getattr(old, key) != getattr(new, key):
            raise SpecError(f"{key}: study {study!r} uses {getattr(old, key)!r}, this spec {getattr(new, key)!r}"
                            f"{fix}")
    if [d.to_dict() | {"path": d.path} for d in old.search] != [d.to_dict() | {"path": d.path} for d in new.search]:
        raise SpecError(f"search: differs from study {study!r}'s search space{fix}")
    _check_superset("tasks", list(old.tasks), list(new.tasks), study)
    _check_superset("seeds", list(old.seeds), list(new.seeds), study)
    levels = {f.path: list(f.levels) for f in new.factors}
    for factor in old.factors:
        _check_superset(f"factors.{factor.path}", list(factor.levels), levels[factor.path], study)
    if new.trials_per_cell < old.trials_per_cell:
        raise SpecError(f"trials_per_cell: study {study!r} has {old.trials_per_cell}; a spec may raise it, "
                        f"not lower it{fix}")


def _check_superset(where: str, old: list[Any], new: list[Any], study: str) -> None:
    missing = [v for v in old if not any(v == n and type(v) is type(n) for n in new)]
    if missing:
        raise SpecError(f"{where}: study {study!r} has {old}; a spec may add values but not drop "
                        f"{missing}; to run a subset, use a new --study-name")


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _write_attrs(study: optuna.Study, spec: StudySpec) -> None:
    # "spec" is written last: its presence marks a study (or a rewritten copy) as complete.
    study.set_user_attr("factors", spec.factor_paths)
    study.set_user_attr("base_config", _flat(spec.base_config().to_dict()))
    study.set_user_attr("created_by", f"orca-ablate on {socket.gethostname()}")
    study.set_user_attr("spec", spec.to_dict())


def _extend(storage: BaseStorage, study: optuna.Study, spec: StudySpec) -> optuna.Study:
    """Return the study re-created with ``spec``'s wider choices and every existing trial.

    Holds the study lock (PostgreSQL), so no worker claims a cell between the check
    for running attempts and the rewrite.
    """
    with study_lock(storage, study._study_id):
        return _rewrite(storage, study, spec)


def _rewrite(storage: BaseStorage, study: optuna.Study, spec: StudySpec) -> optuna.Study:
    import optuna
    from optuna.trial import TrialState

    name = study.study_name
    trials = study.get_trials(deepcopy=True)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if running:
        owners = sorted({f"{t.user_attrs.get('owner_host')}:{t.user_attrs.get('owner_pid')}" for t in running})
        raise SpecError(f"spec adds tasks, seeds or levels to study {name!r}, which rewrites the study, but "
                        f"{len(running)} attempts are running (owners {', '.join(owners)}); let them finish, "
                        "then run again")
    backup = name + EXTENDING_SUFFIX
    copy = optuna.create_study(storage=storage, study_name=backup, directions=study.directions)
    copy.add_trials(trials)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    copy.set_user_attr("extension_copy_complete", True)
    optuna.delete_study(study_name=name, storage=storage)
    choices = param_distributions(spec)
    for trial in trials:
        trial.distributions = {k: choices.get(k, d) for k, d in trial.distributions.items()}
    new = optuna.create_study(storage=storage, study_name=name, directions=study.directions)
    new.add_trials(trials)
    _write_attrs(new, spec)
    optuna.delete_study(study_name=backup, storage=storage)
    return new


def _recover_extension(storage: BaseStorage, name: str) -> None:
    """Finish or undo an extension of study ``name`` that a killed run left half done."""
    import optuna

    backup = name + EXTENDING_SUFFIX
    names = optuna.get_all_study_names(storage)
    if backup not in names:
        return
    copy = optuna.load_study(study_name=backup, storage=storage)
    if not copy.user_attrs.get("extension_copy_complete"):
        optuna.delete_study(study_name=backup, storage=storage)  # the original was never touched
        return
    if name in names:
        if "spec" in optuna.load_study(study_name=name, storage=storage).user_attrs:
            optuna.delete_study(study_name=backup, storage=storage)  # the rewrite had finished
            return
        optuna.delete_study(study_name=name, storage=storage)
    restored = optuna.create_study(storage=storage, study_name=name, directions=copy.directions)
    restored.add_trials(copy.get_trials(deepcopy=True))
    attrs = {k: v for k, v in copy.user_attrs.items() if k != "extension_copy_complete"}
    for key in sorted(attrs, key=lambda k: k == "spec"):  # "spec" last, as in _write_attrs
        restored.set_user_attr(key, attrs[key])
    optuna.delete_study(study_name=backup, storage=storage)
