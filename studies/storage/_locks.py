"""The study lock: one claimer at a time, across every process and host that shares a study.

- PostgreSQL: an advisory lock keyed by the study id (``_rdb_direct.advisory_lock``);
- a journal file: Optuna's ``JournalFileOpenLock`` on ``<journal>.claim`` (an
  ``O_EXCL`` lock file, safe on NFSv3+ shared filesystems; a lock left by a
  killed holder is broken after its grace period), so workers on many hosts
  claim cells of one journal file without a database server;
- SQLite: none (one process writes it); callers fall back to a check after claiming.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._rdb_direct import advisory_lock

__all__ = ["CLAIM_LOCK_GRACE_S", "study_lock"]

CLAIM_LOCK_GRACE_S = 30
"""A journal claim lock older than this is taken to be left by a killed holder, and broken."""
_CLAIM_SUFFIX = ".claim"


@contextlib.contextmanager
def study_lock(storage: Any, study_id: int) -> Iterator[bool]:
    """Hold the study's claim lock for the block; yield True when it excludes every other process and host.

    Raises ``_rdb_direct.LockLost`` when a PostgreSQL connection holding the lock
    dropped during the block (its work was not protected).
    """
    journal = _journal_file(storage)
    if journal is None:
        with advisory_lock(storage, study_id) as exclusive:
            yield exclusive
        return
    from optuna.storages.journal import JournalFileOpenLock

    lock = JournalFileOpenLock(journal + _CLAIM_SUFFIX, grace_period=CLAIM_LOCK_GRACE_S)
    lock.acquire()
    try:
        yield True
    finally:
        lock.release()


def _journal_file(storage: Any) -> str | None:
    """Return the file of a journal-file storage, or None for any other storage."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not isinstance(storage, JournalStorage):
        return None
    backend = getattr(storage, "_backend", None)
    path = getattr(backend, "_file_path", None) if isinstance(backend, JournalFileBackend) else None
    return str(path) if path else None
