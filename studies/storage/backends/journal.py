"""Journal-file storage (Optuna's ``JournalFileBackend``): ``journal:///abs/path.log``, ``journal:rel.log``, ``x.log``.

Appends one JSON line per storage call under a file lock, so many processes of
one host may share it; a plain path is what Optuna's CLI and optuna-dashboard
open as a journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.contract import journal_path

from .._errors import StorageError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKEND"]


class JournalBackend:
    """A journal file; artifacts go to ``<stem>-artifacts/`` beside it."""

    name = "journal"
    example = "journal:///PATH.log"
    shared_by = "host"

    def matches(self, url: str) -> bool:
        return journal_path(url) is not None

    def open(self, url: str, *, must_exist: bool) -> BaseStorage:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = self._path(url)
        if not path.parent.is_dir():
            raise StorageError(f"--storage {url!r}: directory {str(path.parent)!r} does not exist")
        if must_exist and not path.is_file():
            raise StorageError(f"--storage {url!r}: no such journal file")
        return JournalStorage(JournalFileBackend(str(path)))

    def artifact_default(self, url: str) -> Path | None:
        path = self._path(url).resolve()
        return path.with_name(f"{path.stem}-artifacts")

    @staticmethod
    def _path(url: str) -> Path:
        path = journal_path(url)
        assert path is not None, "matches() was checked first"
        return path


BACKEND = JournalBackend()
