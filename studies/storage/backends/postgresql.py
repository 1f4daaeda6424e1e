"""Database servers (PostgreSQL): shared by workers on any number of hosts.

Opened through ``storage._server`` (connect timeout, one-line errors with the
password masked, calls retried across dropped connections); claims take the
study's advisory lock (``storage._rdb_direct.study_lock``). A server has no
place for files, so artifacts go where ``--artifact-dir`` says (recorded in the study).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.contract import is_server_url

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

__all__ = ["BACKEND"]


class ServerBackend:
    """Any SQLAlchemy database URL that is not SQLite; tested on PostgreSQL."""

    name = "postgresql"
    example = "postgresql://USER@HOST/DB"
    shared_by = "hosts"

    def matches(self, url: str) -> bool:
        return is_server_url(url)

    def open(self, url: str, *, must_exist: bool) -> BaseStorage:
        from .._server import open_server_storage

        return open_server_storage(url)  # type: ignore[return-value]  # a registered virtual BaseStorage

    def artifact_default(self, url: str) -> Path | None:
        return None


BACKEND = ServerBackend()
