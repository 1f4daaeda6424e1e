"""Journal-file storage (Optuna's ``JournalFileBackend``): ``journal:///abs/path.log``, ``journal:rel.log``, ``x.log``.

Appends one JSON line per storage call under a file lock, and claims cells under
a lock file of its own (``storage._locks``), so worker processes on many hosts
may share one journal on a shared filesystem (NFSv3 or later) without a database
server; staleness across hosts goes by heartbeat. A plain path is what Optuna's
CLI and optuna-dashboard open as a journal. Artifacts go to ``<stem>-artifacts/``
beside the file.

Integrity: a write cut short (a full disk, a killed writer) must not leave half
a record that the next writer extends into garbage. :class:`SafeJournalFileBackend`
appends each batch with one write and, when the write fails part-way, cuts the
file back to where it was; before appending, a torn last line (left by a crash
of another writer) is moved aside to ``<file>.torn-<time>`` and cut off, so
every later record starts on a line of its own. A journal whose bad record is
followed by others cannot be repaired safely: opening it is refused with the
line number and what to do.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contract import journal_path

from .._errors import StorageError
from . import Backend, artifacts_beside

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKEND", "SafeJournalFileBackend"]


def _backend_class() -> type:
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class SafeJournalFileBackend(JournalFileBackend):  # type: ignore[misc]
        """Optuna's journal file backend that never appends after a torn record, nor leaves one."""

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
            with get_lock_file(self._lock):
                fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND)
                try:
                    size = _cut_torn_tail(fd, self._file_path)
                    try:
                        _write_all(fd, data)
                        os.fsync(fd)
                    except OSError as exc:
                        os.ftruncate(fd, size)  # no half record stays behind
                        os.fsync(fd)
                        raise _write_error(self._file_path, exc) from None
                finally:
                    os.close(fd)

    return SafeJournalFileBackend


def _cut_torn_tail(fd: int, path: str) -> int:
    """Move a torn last line (no newline) aside and cut it off; return the size of the complete records."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    cut = _last_newline(fd, size)
    torn = os.pread(fd, size - cut, cut)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    Path(f"{path}.torn-{stamp}").write_bytes(torn)
    os.ftruncate(fd, cut)
    os.fsync(fd)
    return cut


def _last_newline(fd: int, before: int) -> int:
    """Return the offset just past the last newline before ``before`` (0 when there is none)."""
    while before > 0:
        start = max(0, before - (1 << 20))
        chunk = os.pread(fd, before - start, start)
        if b"\n" in chunk:
            return start + chunk.rfind(b"\n") + 1
        before = start
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_error(path: str, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"journal {path}: the disk is full; the write was undone and the journal is intact: "
                            "free some space and run the same command again (finished cells are kept)")
    return StorageError(f"journal {path}: cannot write ({exc.strerror or exc}); the write was undone and the "
                        "journal is intact: fix the cause and run the same command again")


def SafeJournalFileBackend(path: str) -> Any:  # noqa: N802 - a class made on first use (Optuna imports lazily)
    """Return a journal file backend over ``path`` that keeps the file whole (see the module docstring)."""
    return _backend_class()(path)


def _open(url: str, *, must_exist: bool) -> BaseStorage:
    from optuna.storages.journal import JournalStorage

    path = journal_path(url)
    assert path is not None, "Backend.matches was checked first"
    if not path.parent.is_dir():
        raise StorageError(f"--storage {url!r}: directory {str(path.parent)!r} does not exist")
    if must_exist and not path.is_file():
        raise StorageError(f"--storage {url!r}: no such journal file")
    if path.exists() and not path.is_file():
        raise StorageError(f"--storage {url!r}: {str(path)!r} is not a file; name a journal file")
    if not must_exist and not (os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))):
        raise StorageError(f"--storage {url!r}: {str(path)!r} (or its directory, where the lock files go) is "
                           "read-only; give a journal file in a directory you may write")
    try:
        return JournalStorage(SafeJournalFileBackend(str(path)))
    except PermissionError:
        raise StorageError(f"--storage {url!r}: no permission to open {str(path)!r}; give a journal file you can "
                           "read and write") from None
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise StorageError(_corrupt_message(url, path, exc)) from None


def _corrupt_message(url: str, path: Path, exc: Exception) -> str:
    line = _first_bad_line(path)
    where = f"line {line}" if line is not None else "a record"
    keep = f"head -n {line - 1} {path} > FIXED.log" if line else f"a copy of {path} from before the fault"
    return (f"--storage {url!r}: {where} of the journal file is not an Optuna record ({type(exc).__name__}), and "
            f"records follow it, so it cannot be repaired safely; the file was not changed. Keep the records "
            f"before it ({keep}) and run with --storage FIXED.log, or give another journal file")


def _first_bad_line(path: Path) -> int | None:
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    json.loads(line)
                except ValueError:
                    return number
    except OSError:
        return None
    return None


BACKEND = Backend("journal", "journal:///PATH.log", "hosts", matches=lambda url: journal_path(url) is not None,
                  open=_open, artifact_default=lambda url: artifacts_beside(journal_path(url)))
