"""Storage backends: one module per kind of Optuna storage, chosen by URL.

A backend says which URLs it takes, opens them, where a study's artifacts go by
default, and how many processes may write it at once. To add one, write a
module here with a module-level ``BACKEND`` object of the :class:`Backend`
protocol and add one line to :data:`BACKENDS` (first match wins). Nothing else
in ``studies`` dispatches on the URL.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .._errors import StorageError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKENDS", "Backend", "backend_for"]

BACKENDS: tuple[str, ...] = (
    "studies.storage.backends.journal",
    "studies.storage.backends.sqlite",
    "studies.storage.backends.postgresql",
)
"""Backend modules, in the order their ``matches`` are tried."""


class Backend(Protocol):
    """What ``studies`` needs of a kind of storage."""

    name: str
    """Short name, e.g. ``sqlite``."""
    example: str
    """A URL of this kind, for error messages: ``sqlite:///FILE.db``."""
    shared_by: str | None
    """Who may write it at once: ``"hosts"`` (workers on many hosts), ``"host"`` (many processes of one
    host), or None (one process: ``run --workers K`` with the run as the only writer)."""

    def matches(self, url: str) -> bool:
        """Return whether ``url`` is of this kind."""

    def open(self, url: str, *, must_exist: bool) -> BaseStorage:
        """Return the Optuna storage; with ``must_exist``, a missing file is a StorageError, not created."""

    def artifact_default(self, url: str) -> Path | None:
        """Return the default artifact directory of a study stored at ``url`` (None: it must be given)."""


def backend_for(url: str) -> Backend:
    """Return the backend that takes ``url``; raise StorageError naming the forms when none does."""
    backends = [importlib.import_module(name).BACKEND for name in BACKENDS]
    try:
        for backend in backends:
            if backend.matches(url):
                return backend  # type: ignore[no-any-return]
    except ValueError as exc:  # a URL of a known kind, malformed (journal: with no file)
        raise StorageError(str(exc)) from None
    forms = ", ".join(b.example for b in backends)
    raise StorageError(f"--storage {url!r}: expected an Optuna storage URL or a journal file: {forms} "
                       "(a plain path ending in .log or .jsonl is a journal file)")
