"""orca-ablate's study layer: YAML specs of ablation factors run as Optuna studies.

Public names are imported on first use (PEP 562), so that ``import studies.cli``
and ``orca-ablate --help`` do not import Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cells import Cell, cell_key, expand_cells, param_distributions
    from ._engine import WorkerError
    from ._report import FailedCell, StudyReport
    from ._runs import run_study, run_worker
    from ._spec import Factor, SearchDimension, SpecError, StudySpec, load_spec, shipped_specs
    from ._status import CellStatus, StudyStatus, study_status
    from ._storage import DEFAULT_STORAGE, StorageError, open_storage
    from ._trials import DEFAULT_GRACE_PERIOD

_EXPORTS: dict[str, str] = {
    "Cell": "._cells",
    "cell_key": "._cells",
    "expand_cells": "._cells",
    "param_distributions": "._cells",
    "FailedCell": "._report",
    "StudyReport": "._report",
    "WorkerError": "._engine",
    "run_study": "._runs",
    "run_worker": "._runs",
    "Factor": "._spec",
    "SearchDimension": "._spec",
    "SpecError": "._spec",
    "StudySpec": "._spec",
    "load_spec": "._spec",
    "shipped_specs": "._spec",
    "CellStatus": "._status",
    "StudyStatus": "._status",
    "study_status": "._status",
    "DEFAULT_STORAGE": "._storage",
    "StorageError": "._storage",
    "open_storage": "._storage",
    "DEFAULT_GRACE_PERIOD": "._trials",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'studies' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
