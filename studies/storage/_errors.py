"""The error of the storage room: a URL that cannot be opened, a missing study, an unreachable server."""

from __future__ import annotations

from harness.errors import OrcaAblateError

__all__ = ["StorageError", "as_storage_error"]


class StorageError(OrcaAblateError):
    """A storage URL cannot be opened, a study is missing from it, or the server stayed unreachable."""


_FAULTS = (
    ("database or disk is full", "the disk is full"),
    ("no space left on device", "the disk is full"),
    ("readonly database", "the storage file is read-only"),
    ("read-only file system", "the filesystem is read-only"),
    ("disk i/o error", "a disk I/O error"),
    ("database disk image is malformed", "the SQLite file is corrupt"),
    ("file is not a database", "the file is not a SQLite database"),
    ("permission denied", "no permission to write the storage"),
)


def as_storage_error(exc: BaseException) -> StorageError | None:
    """Return a one-line StorageError for a storage fault met while running (disk full, read-only, corrupt), or None.

    The CLI calls it for errors that are not user errors: a fault of the storage's
    disk is the user's to fix, and what was committed before it is kept.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        for needle, what in _FAULTS:
            if needle in text and (isinstance(current, OSError) or "sqlite" in type(current).__module__
                                   or "sqlalchemy" in type(current).__module__):
                return StorageError(f"{what} ({str(current).splitlines()[0][:200]}); what was written before is "
                                    "kept: fix the cause and run the same command again")
        current = current.__cause__ or current.__context__
    return None
