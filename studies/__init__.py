"""orca-ablate's study layer: YAML specs of ablation factors run as Optuna studies.

Three rooms and the CLI on top: ``spec/`` (YAML -> frozen dataclasses -> cells),
``storage/`` (URLs and backends, the study behind a spec, locks, artifacts),
``engine/`` (claiming cells, workers, heartbeats, the run loop), ``commands/``
(one module per ``orca-ablate`` subcommand). Imports go spec <- storage <- engine
<- commands; ``harness`` and ``analysis`` never import ``studies``.

Public names are imported on first use (PEP 562), so that ``import studies.cli``
and ``orca-ablate --help`` do not import Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import (DEFAULT_GRACE_PERIOD, CellStatus, FailedCell, StudyReport, StudyStatus, WorkerError,
                         run_study, run_worker, study_status)
    from .spec import Cell, Factor, SearchDimension, SpecError, StudySpec, cell_key, expand_cells, load_spec, \
        param_distributions, shipped_specs
    from .storage import DEFAULT_STORAGE, StorageError, open_storage

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(["Cell", "Factor", "SearchDimension", "SpecError", "StudySpec", "cell_key", "expand_cells",
                     "load_spec", "param_distributions", "shipped_specs"], ".spec"),
    **dict.fromkeys(["DEFAULT_STORAGE", "StorageError", "open_storage"], ".storage"),
    **dict.fromkeys(["DEFAULT_GRACE_PERIOD", "CellStatus", "FailedCell", "StudyReport", "StudyStatus", "WorkerError",
                     "run_study", "run_worker", "study_status"], ".engine"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'studies' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
