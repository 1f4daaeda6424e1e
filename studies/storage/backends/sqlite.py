"""SQLite storage (``sqlite:///FILE.db``, relative to the working directory), opened in WAL mode.

One process writes it: ``run --workers K`` keeps the storage in the run's own
process and its workers send results over pipes (Optuna's RDB storage on SQLite
crashes concurrent writers; see DESIGN.md). Artifacts go to ``<stem>-artifacts/``
beside the file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contract import is_sqlite_url, sqlite_path

from .._errors import StorageError
from . import Backend, artifacts_beside

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKEND", "SQLITE_TIMEOUT_S", "SQLITE_WAL"]

SQLITE_TIMEOUT_S = 60
"""How long a SQLite writer waits for a lock (readers such as the dashboard hold it briefly)."""
SQLITE_WAL = True
"""Open SQLite files in WAL mode with synchronous=NORMAL (see ``_connect``)."""


def _open(url: str, *, must_exist: bool) -> BaseStorage:
    import optuna
    from optuna.storages import RDBStorage
    from sqlalchemy.exc import DatabaseError, IntegrityError

    kwargs: dict[str, Any] = {}
    file = sqlite_path(url)
    if file is None:
        raise StorageError(f"--storage {url!r}: an in-memory database vanishes when the command ends; give a "
                           "file: sqlite:///FILE.db")
    if not file.resolve().parent.is_dir():
        raise StorageError(f"--storage {url!r}: directory of {str(file)!r} does not exist")
    if must_exist and not file.is_file():
        raise StorageError(f"--storage {url!r}: no such SQLite file {str(file.resolve())!r}")
    _check_file(url, file, write=not must_exist)
    kwargs["creator"] = functools.partial(_connect, str(file))
    for attempt in range(3):
        try:
            return optuna.storages.get_storage(RDBStorage(url, engine_kwargs=kwargs))
        except IntegrityError:
            # Two processes creating a fresh file at once both insert Optuna's schema version;
            # the loser finds the tables there when it tries again.
            if attempt == 2:
                raise
            time.sleep(0.2)
        except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as exc:
            raise StorageError(f"--storage {url!r}: cannot open it ({type(exc).__name__}: {exc})") from None
        except DatabaseError as exc:  # corrupt, truncated, locked for good, or disk full
            raise StorageError(f"--storage {url!r}: cannot open {str(file)!r} as an Optuna SQLite file "
                               f"({_reason(exc)}); the file was not changed: restore it from a copy, or give "
                               "another --storage") from None
    raise AssertionError("unreachable")


def _check_file(url: str, file: Path, *, write: bool) -> None:
    """Raise StorageError for a file that is not an Optuna SQLite database, or that a writer may not write.

    Reads the file's header and table names only; the file is never changed.
    """
    if write and ((file.exists() and not os.access(file, os.W_OK)) or not os.access(file.resolve().parent, os.W_OK)):
        raise StorageError(f"--storage {url!r}: {str(file)!r} (or its directory, where SQLite keeps its journal) "
                           "is read-only; give a file in a directory you may write")
    if not file.is_file() or file.stat().st_size == 0:
        return
    with file.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise StorageError(f"--storage {url!r}: {str(file)!r} is not a SQLite database (corrupt, truncated, or "
                               "another kind of file); the file was not changed: give an Optuna SQLite file")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_S)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        if not os.access(file.resolve().parent, os.W_OK):
            raise StorageError(f"--storage {url!r}: {str(file)!r} is in a read-only directory, and SQLite needs to "
                               "write its lock files beside it even to read; copy the file somewhere writable") from None
        raise StorageError(f"--storage {url!r}: {str(file)!r} cannot be read as a SQLite database ({exc}); the file "
                           "was not changed: restore it from a copy, or give another --storage") from None
    if tables and not {"studies", "version_info"} <= tables:
        raise StorageError(f"--storage {url!r}: {str(file)!r} is a SQLite database of something else (tables "
                           f"{', '.join(sorted(tables)[:5])}), not an Optuna storage; give another file")


def _reason(exc: Exception) -> str:
    inner = getattr(exc, "orig", None) or exc
    return str(inner).splitlines()[0]


def _connect(file: str) -> sqlite3.Connection:
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


BACKEND = Backend("sqlite", "sqlite:///FILE.db", None, matches=is_sqlite_url, open=_open,
                  artifact_default=lambda url: artifacts_beside(sqlite_path(url)))
