"""Storage: URLs and their backends, opening, the study behind a spec, RDB fast paths, locks, artifacts.

- ``backends/``: one module per kind of storage (SQLite, journal file, PostgreSQL), chosen by URL;
- ``_open``: ``open_storage(url)`` and the artifact directory of a study;
- ``_study``: create, resume or extend the study of a spec (``prepare_study``), read one back;
- ``_server``: database servers: masked URLs, one-line connection errors, retried calls;
- ``_rdb_direct``: the study lock and one-transaction writes beside Optuna's RDB storage;
- ``_dashboard``: optuna-dashboard over a storage, with the artifact store when one is known.
"""

from __future__ import annotations

from harness.contract import DEFAULT_STORAGE

from ._errors import StorageError
from ._open import backend_for, default_artifact_dir, open_storage, record_artifact_dir, recorded_artifact_dir
from ._server import mask_url
from ._study import EXTENDING_SUFFIX, load_study, prepare_study, stored_spec, study_names

__all__ = [
    "DEFAULT_STORAGE", "EXTENDING_SUFFIX", "StorageError", "backend_for", "default_artifact_dir", "load_study",
    "mask_url", "open_storage", "prepare_study", "record_artifact_dir", "recorded_artifact_dir", "stored_spec",
    "study_names",
]
