"""Database servers (PostgreSQL): shared by workers on any number of hosts.

Opened through ``storage._server`` (connect timeout, one-line errors with the
password masked, calls retried across dropped connections); claims take the
study's advisory lock (``storage._rdb_direct.study_lock``). A server has no
place for files, so artifacts go where ``--artifact-dir`` says (recorded in the
study). Any SQLAlchemy URL that is not SQLite lands here; PostgreSQL is the one tested.
"""

from __future__ import annotations

from harness.contract import is_server_url

from .._server import open_server_storage
from . import Backend

__all__ = ["BACKEND"]

BACKEND = Backend("postgresql", "postgresql://USER@HOST/DB", "hosts", matches=is_server_url,
                  open=lambda url, must_exist: open_server_storage(url), artifact_default=lambda url: None)
