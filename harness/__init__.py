"""orca-ablate's ML pipeline: one ORCA trial from a config, with no Optuna in it."""

from __future__ import annotations

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
from .trial import run_trial, validate_config

__all__ = [
    "BodyConfig",
    "ConfigError",
    "DataConfig",
    "DataError",
    "EmbedderConfig",
    "FinetuneConfig",
    "OrcaAblateError",
    "TrialConfig",
    "TrialFailure",
    "TrialResult",
    "config_paths",
    "parse_assignments",
    "run_trial",
    "validate_config",
]
