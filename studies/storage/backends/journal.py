"""Journal-file storage (Optuna's ``JournalFileBackend``): ``journal:///abs/path.log``, ``journal:rel.log``, ``x.log``.

Appends one JSON line per storage call under a file lock, and claims cells under
a lock file of its own (``storage._locks``), so worker processes on many hosts
may share one journal on a shared filesystem (NFSv3 or later) without a database
server; staleness across hosts goes by heartbeat. A plain path is what Optuna's
CLI and optuna-dashboard open as a journal. Artifacts go to ``<stem>-artifacts/``
beside the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.contract import journal_path

from .._errors import StorageError
from . import Backend, artifacts_beside

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKEND"]


def _open(url: str, *, must_exist: bool) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = journal_path(url)
    assert path is not None, "Backend.matches was checked first"
    if not path.parent.is_dir():
        raise StorageError(f"--storage {url!r}: directory {str(path.parent)!r} does not exist")
    if must_exist and not path.is_file():
        raise StorageError(f"--storage {url!r}: no such journal file")
    return JournalStorage(JournalFileBackend(str(path)))


BACKEND = Backend("journal", "journal:///PATH.log", "hosts", matches=lambda url: journal_path(url) is not None,
                  open=_open, artifact_default=lambda url: artifacts_beside(journal_path(url)))
