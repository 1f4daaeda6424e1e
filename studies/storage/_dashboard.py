"""optuna-dashboard on a study storage, with the artifact store attached so reports and figures show.

The artifact directory is ``--artifact-dir`` when given, else the one the
studies record (user attr ``artifact_dir``), else ``<file stem>-artifacts/``
beside a SQLite or journal file. A database server has no such place: without
one given or recorded, the dashboard serves the studies without artifacts and
says how to attach a store; a directory given once is recorded in the studies
so that ``report`` and later dashboards find it. optuna-dashboard has no
authentication and can delete studies, so it listens on the loopback interface
unless told otherwise.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from harness.contract import ARTIFACT_DIR, DEFAULT_STORAGE, SPEC

from ._errors import StorageError
from ._open import default_artifact_dir, open_storage
from ._server import mask_url
from ._study import load_study

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Dashboard", "open_dashboard", "serve_dashboard"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Dashboard:
    """What the dashboard serves: the storage, the artifact directory, and what was noted on the way."""

    storage: BaseStorage
    url: str
    """The storage URL with its password masked."""
    artifact_dir: Path | None
    """None: no store is known; the studies are served without artifacts."""
    recorded_in: list[str] = field(default_factory=list)
    """Studies that now record ``artifact_dir`` (they had none)."""
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def artifact_store(self) -> Any:
        """Return the FileSystemArtifactStore over ``artifact_dir`` (created if missing), or None without one."""
        from optuna.artifacts import FileSystemArtifactStore

        if self.artifact_dir is None:
            return None
        os.makedirs(self.artifact_dir, exist_ok=True)
        return FileSystemArtifactStore(str(self.artifact_dir))

    def wsgi(self) -> Any:
        """Return optuna-dashboard's WSGI application over the storage and the artifact store."""
        import optuna_dashboard

        return optuna_dashboard.wsgi(self.storage, artifact_store=self.artifact_store())


def open_dashboard(storage: str | None, *, study_name: str | None = None,
                   artifact_dir: str | Path | None = None) -> Dashboard:
    """Open the storage and settle the artifact directory (recording it in studies that have none).

    ``study_name`` limits the lookup and the recording to one study. Raises
    StorageError when the storage is a database server, no directory is given and
    the studies record none (or several).
    """
    storage = DEFAULT_STORAGE if storage is None else storage
    store = open_storage(storage, must_exist=True)
    studies = _studies(store, study_name)
    recorded = {s.study_name: s.user_attrs[ARTIFACT_DIR] for s in studies
                if isinstance(s.user_attrs.get(ARTIFACT_DIR), str)}
    if artifact_dir is not None:
        directory = Path(artifact_dir).expanduser().resolve()
    elif len(set(recorded.values())) == 1:
        directory = Path(next(iter(recorded.values())))
    elif recorded:
        listing = "; ".join(f"{name}: {path}" for name, path in sorted(recorded.items()))
        raise StorageError(f"the studies keep their artifacts in different directories ({listing}); choose one "
                           "with --study-name, or give --artifact-dir")
    else:
        directory = default_artifact_dir(storage)
    board = Dashboard(store, mask_url(storage), directory)
    if directory is None:
        board.notes.append("no artifact store is known for these studies, so reports and figures do not show; "
                           "attach one with --artifact-dir DIR (a directory every host that runs reports can "
                           "reach; it is recorded in the studies)")
        return board
    for study in studies:
        old = recorded.get(study.study_name)
        if old is None and SPEC in study.user_attrs:  # an orca-ablate study without one yet
            store.set_study_user_attr(study._study_id, ARTIFACT_DIR, str(directory))
            board.recorded_in.append(study.study_name)
        elif old is not None and Path(old) != directory:
            board.warnings.append(f"study {study.study_name!r} keeps its artifacts in {old}: they do not show "
                                  f"in this dashboard (artifacts are served from {directory})")
    return board


def _studies(store: BaseStorage, study_name: str | None) -> list[Any]:
    """Return the FrozenStudy of every study, or of ``study_name`` only (which must exist)."""
    if study_name is not None:
        load_study(store, study_name)  # raises, with a suggestion, when missing
    return [s for s in store.get_all_studies() if study_name is None or s.study_name == study_name]


def serve_dashboard(board: Dashboard, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                    log: TextIO | None = None) -> None:
    """Serve ``board`` with optuna-dashboard's ``run_server`` until interrupted; warn off loopback."""
    import optuna_dashboard

    log = log or sys.stderr
    for line in board.warnings:
        log.write(f"warning: {line}\n")
    for line in board.notes:
        log.write(f"note: {line}\n")
    if board.recorded_in:
        log.write(f"recorded artifact_dir {board.artifact_dir} in studies {', '.join(board.recorded_in)}\n")
    if host not in LOOPBACK:
        log.write(f"warning: --host {host}: the dashboard has no authentication, and anyone who can reach "
                  f"{host}:{port} can read and delete the studies in {board.url}; prefer the default "
                  f"{DEFAULT_HOST} and an SSH tunnel (ssh -L {port}:127.0.0.1:{port} HOST)\n")
    shown = f"[{host}]" if ":" in host else host
    artifacts = board.artifact_dir if board.artifact_dir is not None else "none"
    log.write(f"optuna-dashboard for {board.url} at http://{shown}:{port}/dashboard "
              f"(artifacts: {artifacts}); Ctrl-C stops it\n")
    log.flush()
    try:
        optuna_dashboard.run_server(board.storage, host=host, port=port, artifact_store=board.artifact_store())
    except OSError as exc:
        from harness.errors import ConfigError

        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port, "
                          "or stop what uses it") from None

