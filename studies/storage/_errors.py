"""The error of the storage room: a URL that cannot be opened, a missing study, an unreachable server."""

from __future__ import annotations

from harness.errors import OrcaAblateError

__all__ = ["StorageError"]


class StorageError(OrcaAblateError):
    """A storage URL cannot be opened, a study is missing from it, or the server stayed unreachable."""
