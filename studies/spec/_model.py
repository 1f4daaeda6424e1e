"""Study specs: YAML files validated into frozen dataclasses, with errors that name the path.

A spec declares the grid of an ablation: ``tasks`` (a factor of its own),
``seeds`` (every cell runs once per seed), ``factors`` (TrialConfig paths ->
levels), ``base`` (fixed settings), the ``metric`` that becomes the trial's
value, and optionally ``search`` dimensions tuned per cell by Optuna. Every
mistake raises :class:`SpecError` naming where it is and how to fix it, e.g.
``factors.embeder.epochs: unknown config path; did you mean embedder.epochs?``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.config import TrialConfig
from harness.contract import TEST_SCORE

from ._hypotheses import AnalysisSettings, Hypothesis
from ._parser import SpecParser
from ._types import AdaptiveSeeds, Factor, SearchDimension, Validator

__all__ = ["StudySpec"]


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec; ``StudySpec.from_dict(spec.to_dict()) == spec``."""

    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    factors: tuple[Factor, ...] = ()
    base: Mapping[str, Any] = field(default_factory=dict)
    """Dotted TrialConfig path -> value (coerced to the path's type)."""
    metric: str = TEST_SCORE
    direction: str = "maximize"
    search: tuple[SearchDimension, ...] = ()
    trials_per_cell: int = 1
    sampler: str = "tpe"
    description: str = ""
    baselines: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """``baselines:``: (task, baseline names) pairs; each baseline is a cell per task and seed."""
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    """``analysis:``: margin, alpha and rho_weak of the verdicts (recorded with the study)."""
    hypotheses: tuple[Hypothesis, ...] = ()
    """``hypotheses:``: the pre-registered hypotheses the report gives verdicts on."""
    adaptive: AdaptiveSeeds | None = None
    """``seeds: {start, step, max}``: ``seeds`` are 0..max-1, opened round by round until the
    hypotheses are decided (group-sequential; see docs/statistics.md). None: every seed runs."""
    trial_fn: str | None = None
    """``trial_fn:`` (or ``run --trial-fn``): ``module:function`` run for every cell instead of
    ``harness.run_trial``; factor, base and task names are then free, and the function gets
    :meth:`Cell.settings` as a plain dict. None: ``harness.run_trial`` on the cell's TrialConfig."""

    @property
    def free(self) -> bool:
        """True when a trial function of the user's runs the cells (names are not the harness's)."""
        return self.trial_fn is not None

    def baselines_of(self, task: str) -> tuple[str, ...]:
        """Return the baselines that run on ``task``."""
        return next((names for t, names in self.baselines if t == task), ())

    @property
    def factor_paths(self) -> list[str]:
        """Return the factor paths in spec order."""
        return [f.path for f in self.factors]

    def base_config(self) -> TrialConfig:
        """Return the TrialConfig every cell starts from (defaults + ``base``); only for harness specs."""
        if self.free:
            raise TypeError(f"spec {self.name!r} runs {self.trial_fn}, not harness.run_trial: it has no "
                            "TrialConfig; use base_settings()")
        return TrialConfig().override(self.base)

    def base_settings(self) -> dict[str, Any]:
        """Return the settings every cell starts from, flat: TrialConfig paths (harness) or ``base`` as written."""
        return dict(self.base) if self.free else self.base_config().flat()

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-serialisable dict in canonical form."""
        return {
            "name": self.name,
            "description": self.description,
            "tasks": list(self.tasks),
            "seeds": list(self.seeds),
            "factors": {f.path: list(f.levels) for f in self.factors},
            "base": dict(self.base),
            "metric": self.metric,
            "direction": self.direction,
            "search": {d.path: d.to_dict() for d in self.search},
            "trials_per_cell": self.trials_per_cell,
            **({"sampler": self.sampler} if self.search else {}),
            # Only when declared, so that the canonical dict of an older spec is unchanged.
            **({"baselines": {task: list(names) for task, names in self.baselines}} if self.baselines else {}),
            **({"analysis": self.analysis.to_dict()} if self.analysis != AnalysisSettings() else {}),
            **({"hypotheses": [h.to_dict() for h in self.hypotheses]} if self.hypotheses else {}),
            **({"trial_fn": self.trial_fn} if self.trial_fn is not None else {}),
            **({"adaptive": self.adaptive.to_dict()} if self.adaptive is not None else {}),
        }

    def to_json(self) -> str:
        """Return the canonical dict as JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "spec", validator: Validator | None = None,
                  overrides: Mapping[str, Any] | None = None) -> StudySpec:
        """Return a validated spec from a parsed YAML mapping.

        ``overrides`` (from ``--set``) replace or add ``base`` entries. ``validator``
        checks registry names (tasks, proxies, objectives, freeze modes) of the
        configs the spec produces; None skips that check, as does a ``trial_fn:``.
        """
        parser = SpecParser(source)
        spec = cls(**parser.parse(data, overrides or {}))
        if validator is not None and not spec.free:  # a user's trial function owns its names
            parser.check_names(spec, validator)
        return spec


