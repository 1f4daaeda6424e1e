"""The parts of a study spec: factors, search dimensions, the names a spec may use, and SpecError."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from harness.config import TrialConfig
from harness.contract import METRICS
from harness.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["DIRECTIONS", "METRICS", "SAMPLERS", "SPENDINGS", "AdaptiveSeeds", "Factor", "Scalar", "SearchDimension",
           "SpecError", "Validator"]

Scalar = Union[str, int, float, bool, None]
"""A factor level or a categorical choice: what Optuna's CategoricalDistribution accepts."""

Validator = Callable[[TrialConfig], None]
"""Checks registry names of a config (``harness.validate_config``); raises ConfigError."""


class SpecError(ConfigError):
    """A study spec is invalid, or does not fit the study it names; the message says the fix."""


DIRECTIONS = ("maximize", "minimize")

SAMPLERS: dict[str, str] = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
}
"""Sampler name -> Optuna class; used for ``search:`` dimensions within each cell."""

SPENDINGS = ("pocock", "obf")
"""Lan-DeMets alpha spending functions of adaptive seeds (``analysis._sequential.SPENDING``)."""


@dataclass(frozen=True)
class AdaptiveSeeds:
    """``seeds: {start, step, max}``: seeds 0..max-1 are declared; they open round by round."""

    start: int
    step: int
    max: int
    spending: str = "pocock"

    def looks(self) -> tuple[int, ...]:
        """Return the seed counts of the looks: start, start + step, ..., and max last."""
        out = list(range(self.start, self.max + 1, self.step))
        if out[-1] != self.max:
            out.append(self.max)
        return tuple(out)

    def to_dict(self) -> dict[str, object]:
        """Return the canonical ``adaptive:`` block."""
        return {"start": self.start, "step": self.step, "max": self.max, "spending": self.spending}


@dataclass(frozen=True)
class Factor:
    """One ablation factor: a TrialConfig path and its levels (plain values, coerced to the path's type)."""

    path: str
    levels: tuple[Scalar, ...]


@dataclass(frozen=True)
class SearchDimension:
    """One hyperparameter tuned within each cell: a range (``low``/``high``) or ``choices``."""

    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Scalar, ...] | None = None
    integer: bool = False
    """True when the path holds an int: the range is an IntDistribution."""

    def distribution(self) -> BaseDistribution:
        """Return the Optuna distribution of this dimension."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log,
                                   step=int(self.step) if self.step else 1)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def to_dict(self) -> dict[str, Any]:
        """Return the dimension as written in a spec (only the keys that are set)."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


