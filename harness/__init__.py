"""orca-ablate's ML pipeline: one ORCA trial from a config, with no Optuna in it.

Config and error types import eagerly (they need only the standard library and
PyYAML); ``run_trial``, ``validate_config``, ``build_parts`` and ``TrialParts`` import
torch on first use (PEP 562), so that processes which only validate specs or read
storage stay light; ``run_baseline``, ``BASELINES`` and ``default_baselines`` load
``harness.baselines`` on first use (it imports scikit-learn and aeon only when a
baseline runs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import (
    BodyConfig,
    DataConfig,
    EmbedderConfig,
    FinetuneConfig,
    TrialConfig,
    config_paths,
    parse_assignments,
)
from .errors import ConfigError, DataError, OrcaAblateError, TrialFailure
from .result import TrialResult

if TYPE_CHECKING:
    from .baselines import BASELINES, default_baselines, run_baseline
    from .parts import TrialParts, build_parts
    from .trial import check_data, run_trial, validate_config

_LAZY: dict[str, str] = {
    "run_trial": ".trial",
    "validate_config": ".trial",
    "check_data": ".trial",
    "build_parts": ".parts",
    "TrialParts": ".parts",
    "run_baseline": ".baselines",
    "BASELINES": ".baselines",
    "default_baselines": ".baselines",
}

__all__ = [
    "BASELINES",
    "BodyConfig",
    "ConfigError",
    "DataConfig",
    "DataError",
    "EmbedderConfig",
    "FinetuneConfig",
    "OrcaAblateError",
    "TrialConfig",
    "TrialFailure",
    "TrialParts",
    "TrialResult",
    "check_data",
    "build_parts",
    "config_paths",
    "default_baselines",
    "parse_assignments",
    "run_baseline",
    "run_trial",
    "validate_config",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
