"""Exceptions that mark user mistakes (bad config, bad data) apart from bugs."""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "TrialFailure", "OrcaAblateError"]


class OrcaAblateError(Exception):
    """Base class of the errors that the CLI reports without a traceback (exit code 2)."""

    user_error = True
    """The CLI prints any exception with ``user_error = True`` as one line and exits 2."""


class ConfigError(OrcaAblateError, ValueError):
    """A configuration value or key is invalid; the message names the path and the fix."""


class DataError(OrcaAblateError, ValueError):
    """A data file is missing or malformed, or the data hold NaN/inf; the message names it."""


class TrialFailure(OrcaAblateError, RuntimeError):
    """A trial stopped during training (e.g. a NaN loss); the message names stage and epoch."""
