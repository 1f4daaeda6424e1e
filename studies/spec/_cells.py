"""Cells: the (task, factor levels, seed) points of a spec's grid, each a TrialConfig.

The engine computes the cell list itself (no GridSampler, see DESIGN.md) and
finds what is done by reading each trial's ``cell`` user attr. A cell's key is
canonical JSON of its task, factor levels and seed, so it is stable across runs,
processes and spec edits that only add levels. With ``search:``, a cell holds
``trials_per_cell`` slots, each of which ends COMPLETE once.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.config import TrialConfig
from harness.contract import BASELINE, PARAM_SEED, PARAM_TASK

from ._model import StudySpec
from ._types import Scalar

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = ["Cell", "cell_key", "expand_cells", "param_distributions"]


def cell_key(task: str, levels: Mapping[str, Scalar], seed: int) -> str:
    """Return the stable key of a cell: canonical JSON of task, factor levels and seed."""
    return json.dumps({PARAM_TASK: task, **levels, PARAM_SEED: seed}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Cell:
    """One unit of work: a task, one level per factor, a seed and (with search) a slot."""

    task: str
    levels: tuple[tuple[str, Scalar], ...]
    """(factor path, level) in spec order."""
    seed: int
    slot: int = 0
    """Index of the search trial within the cell; always 0 without ``search:``."""
    baseline: str | None = None
    """A classical baseline cell (no factor levels), or None for an ORCA cell."""

    @property
    def key(self) -> str:
        """Return the cell key (task, factors or baseline, and seed; the ``cell`` user attr)."""
        return cell_key(self.task, self._levels(), self.seed)

    def _levels(self) -> dict[str, Scalar]:
        return {BASELINE: self.baseline} if self.baseline is not None else dict(self.levels)

    @property
    def ident(self) -> tuple[str, int]:
        """Return (key, slot): what must end COMPLETE exactly once."""
        return self.key, self.slot

    def params(self) -> dict[str, Scalar]:
        """Return the trial params: task, every factor path as written in the spec, and seed."""
        return {PARAM_TASK: self.task, **self._levels(), PARAM_SEED: self.seed}

    def settings(self, spec: StudySpec, search_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return what a worker runs: the TrialConfig dict (harness specs) or, with ``trial_fn:``, a flat dict.

        The flat dict is ``base`` as written, then the factor levels and searched values
        under their spec names, then ``task`` and ``seed``: ``{"lr": 0.1, "method": "a",
        "task": "t1", "seed": 0}``.
        """
        if not spec.free:
            return self.config(spec, search_params).to_dict()
        return {**dict(spec.base), **dict(self.levels), **(search_params or {}), PARAM_TASK: self.task,
                PARAM_SEED: self.seed}

    def config(self, spec: StudySpec, search_params: Mapping[str, Any] | None = None) -> TrialConfig:
        """Return the cell's TrialConfig: defaults, then base, factor levels, task, seed, searched values."""
        if self.baseline is not None:  # the same data settings and seed as the ORCA cells: identical splits
            return spec.base_config().override({PARAM_TASK: self.task, PARAM_SEED: self.seed, BASELINE: self.baseline})
        return spec.base_config().override({**dict(self.levels), PARAM_TASK: self.task, PARAM_SEED: self.seed,
                                            **(search_params or {})})

    def label(self) -> str:
        """Return a short human-readable name: ``digits embedder.epochs=2 seed=0``."""
        parts = [self.task] + [f"{p}={_show(v)}" for p, v in self._levels().items()] + [f"seed={self.seed}"]
        return " ".join(parts) + (f" #{self.slot}" if self.slot else "")


def expand_cells(spec: StudySpec) -> list[Cell]:
    """Return every cell of a spec: seed-major (all cells of seed 0 first), then task, then factors, then baselines."""
    paths = spec.factor_paths
    cells = []
    for seed in spec.seeds:
        for task in spec.tasks:
            for combo in itertools.product(*(f.levels for f in spec.factors)):
                levels = tuple(zip(paths, combo))
                for slot in range(spec.trials_per_cell):
                    cells.append(Cell(task, levels, seed, slot))
            cells += [Cell(task, (), seed, baseline=name) for name in spec.baselines_of(task)]
    return cells


def param_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Return the distribution of every trial param: categorical over declared tasks, levels, seeds."""
    from optuna.distributions import CategoricalDistribution

    out: dict[str, BaseDistribution] = {PARAM_TASK: CategoricalDistribution(spec.tasks)}
    for factor in spec.factors:
        out[factor.path] = CategoricalDistribution(factor.levels)
    out[PARAM_SEED] = CategoricalDistribution(spec.seeds)
    names = list(dict.fromkeys(name for _, listed in spec.baselines for name in listed))
    if names:
        out[BASELINE] = CategoricalDistribution(names)
    for dim in spec.search:
        out[dim.path] = dim.distribution()
    return out


def _show(value: Scalar) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
