"""Opening a storage URL through its backend, and where a study's artifacts live.

Storage URLs: any Optuna RDB URL (``sqlite:///orca-ablate.db``, the default,
relative to the working directory; ``postgresql://...``), or a journal file:
``journal:///abs/path/study.log``, ``journal:relative/path.log``, or a plain path
ending in ``.log`` or ``.jsonl`` (forms parsed in ``harness.contract``).

Artifacts (reports, figures) go to a directory recorded in the study's user attr
``artifact_dir``: ``--artifact-dir`` when given, else the backend's default
(``<file stem>-artifacts/`` beside a SQLite or journal file; none for a server).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.contract import ARTIFACT_DIR, DEFAULT_STORAGE

from .backends import Backend, backend_for

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["DEFAULT_STORAGE", "backend_for", "default_artifact_dir", "open_storage", "record_artifact_dir",
           "recorded_artifact_dir"]


def open_storage(url: str | None = None, *, must_exist: bool = False) -> BaseStorage:
    """Return the Optuna storage behind a URL (see the module docstring for the forms).

    With ``must_exist``, a SQLite or journal file that does not exist is an error
    rather than created (for commands that only read).
    """
    url = DEFAULT_STORAGE if url is None else url
    backend: Backend = backend_for(url)
    return backend.open(url, must_exist=must_exist)


def default_artifact_dir(url: str | None) -> Path | None:
    """Return the backend's default artifact directory for ``url`` (None for a database server)."""
    url = DEFAULT_STORAGE if url is None else url
    return backend_for(url).artifact_default(url)


def recorded_artifact_dir(study: optuna.Study) -> str | None:
    """Return the artifact directory recorded in ``study``, or None."""
    recorded = study.user_attrs.get(ARTIFACT_DIR)
    return recorded if isinstance(recorded, str) else None


def record_artifact_dir(study: optuna.Study, directory: str | Path) -> str | None:
    """Record ``directory`` (made absolute) as the study's ``artifact_dir``; return the one it replaced, if any."""
    new = str(Path(directory).expanduser().resolve())
    old = recorded_artifact_dir(study)
    if old != new:
        study.set_user_attr(ARTIFACT_DIR, new)
    return old if old is not None and old != new else None
