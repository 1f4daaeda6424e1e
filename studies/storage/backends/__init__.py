"""Storage backends: one module per kind of Optuna storage, chosen by URL.

A backend says which URLs it takes, opens them, where a study's artifacts go by
default, and how many processes may write it at once. To add one, write a
module here with a module-level ``BACKEND = Backend(...)`` (see :class:`Backend`)
and add its module path to :data:`BACKENDS` (first match wins). Nothing else in
``studies`` dispatches on the URL.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import StorageError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKENDS", "Backend", "artifacts_beside", "backend_for"]

BACKENDS: tuple[str, ...] = (
    "studies.storage.backends.journal",
    "studies.storage.backends.sqlite",
    "studies.storage.backends.postgresql",
)
"""Backend modules, in the order their ``matches`` are tried."""


@dataclass(frozen=True)
class Backend:
    """What ``studies`` needs of a kind of storage."""

    name: str
    """Short name, e.g. ``sqlite``."""
    example: str
    """A URL of this kind, for error messages: ``sqlite:///FILE.db``."""
    shared_by: str | None
    """Who may write it at once: ``"hosts"`` (workers on many hosts), ``"host"`` (many processes of one
    host), or None (one process: ``run --workers K`` with the run as the only writer)."""
    matches: Callable[[str], bool]
    """``matches(url)``: whether ``url`` is of this kind."""
    open: Callable[..., BaseStorage]
    """``open(url, must_exist=...)``: the Optuna storage; with ``must_exist`` a missing file is a
    StorageError, not created."""
    artifact_default: Callable[[str], Path | None]
    """``artifact_default(url)``: the default artifact directory of a study stored at ``url``
    (None: it must be given)."""


def artifacts_beside(file: Path | None) -> Path | None:
    """Return ``<stem>-artifacts/`` beside a storage file (absolute), or None without a file."""
    if file is None:
        return None
    path = file.resolve()
    return path.with_name(f"{path.stem}-artifacts")


def backend_for(url: str) -> Backend:
    """Return the backend that takes ``url``; raise StorageError naming the forms when none does."""
    if not url.strip():
        raise StorageError("--storage '': empty; give a storage URL (sqlite:///FILE.db, postgresql://USER@HOST/DB, "
                           "journal:///PATH.log) or leave --storage out for sqlite:///orca-ablate.db")
    backends: list[Backend] = [importlib.import_module(name).BACKEND for name in BACKENDS]
    try:
        for backend in backends:
            if backend.matches(url):
                return backend
    except ValueError as exc:  # a URL of a known kind, malformed (journal: with no file)
        raise StorageError(str(exc)) from None
    forms = ", ".join(b.example for b in backends)
    raise StorageError(f"--storage {url!r}: expected an Optuna storage URL or a journal file: {forms} "
                       "(a plain path ending in .log or .jsonl is a journal file)")
