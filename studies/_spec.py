"""Study specs: YAML files validated into frozen dataclasses, with errors that name the path.

A spec declares the grid of an ablation: ``tasks`` (a factor of its own),
``seeds`` (every cell runs once per seed), ``factors`` (TrialConfig paths ->
levels), ``base`` (fixed settings), the ``metric`` that becomes the trial's
value, and optionally ``search`` dimensions tuned per cell by Optuna. Every
mistake raises :class:`SpecError` naming where it is and how to fix it, e.g.
``factors.embeder.epochs: unknown config path; did you mean embedder.epochs?``.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import yaml

from harness.config import TrialConfig
from harness.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "DIRECTIONS",
    "METRICS",
    "SAMPLERS",
    "Factor",
    "SearchDimension",
    "SpecError",
    "StudySpec",
    "load_spec",
    "shipped_specs",
]

Scalar = Union[str, int, float, bool, None]
"""A factor level or a categorical choice: what Optuna's CategoricalDistribution accepts."""

Validator = Callable[[TrialConfig], None]
"""Checks registry names of a config (``harness.validate_config``); raises ConfigError."""


class SpecError(ConfigError):
    """A study spec is invalid, or does not fit the study it names; the message says the fix."""


METRICS: dict[str, str] = {
    "test_score": "the task metric on the test split (ablation grids)",
    "val_score": "the best validation score (required with search:)",
    "otdd_before": "OTDD between embedded data and proxy before alignment",
    "otdd_after": "OTDD after alignment",
}
"""TrialResult fields a spec may name as ``metric`` (the trial's value)."""

DIRECTIONS = ("maximize", "minimize")

SAMPLERS: dict[str, str] = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
}
"""Sampler name -> Optuna class; used for ``search:`` dimensions within each cell."""

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


@dataclass(frozen=True)
class StudySpec:
    """A validated study spec; ``StudySpec.from_dict(spec.to_dict()) == spec``."""

    name: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    factors: tuple[Factor, ...] = ()
    base: Mapping[str, Any] = field(default_factory=dict)
    """Dotted TrialConfig path -> value (coerced to the path's type)."""
    metric: str = "test_score"
    direction: str = "maximize"
    search: tuple[SearchDimension, ...] = ()
    trials_per_cell: int = 1
    sampler: str = "tpe"
    description: str = ""

    @property
    def factor_paths(self) -> list[str]:
        """Return the factor paths in spec order."""
        return [f.path for f in self.factors]

    def base_config(self) -> TrialConfig:
        """Return the TrialConfig every cell starts from (defaults + ``base``)."""
        return TrialConfig().override(self.base)

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
        configs the spec produces; None skips that check.
        """
        from ._spec_parser import SpecParser

        return SpecParser(source, validator).parse(data, overrides or {})


def shipped_specs() -> dict[str, Path]:
    """Return the specs shipped in ``studies/specs/``: name -> file."""
    root = importlib.resources.files("studies") / "specs"
    out: dict[str, Path] = {}
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = Path(str(entry))
    return dict(sorted(out.items()))


def load_spec(spec: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None, *,
              validator: Validator | Literal["harness"] | None = "harness",
              tasks: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> StudySpec:
    """Return the spec at a path, or the shipped spec of that name, validated.

    ``validator="harness"`` (the default) checks registry names with
    ``harness.validate_config``; pass None to skip, or a function of your own.
    ``tasks`` and ``seeds`` (from ``run --tasks/--seeds``) replace the spec's lists
    and are checked like them.
    """
    path = _find_spec_file(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None
    source = str(path)
    replaced = {key: list(value) for key, value in (("tasks", tasks), ("seeds", seeds)) if value is not None}
    if replaced and isinstance(data, dict):
        data = {**data, **replaced}
        source += " with " + " and ".join(f"--{key}" for key in replaced)
    check = _harness_validator() if isinstance(validator, str) else validator
    return StudySpec.from_dict(data, source=source, validator=check, overrides=overrides)


def _find_spec_file(spec: str | os.PathLike[str]) -> Path:
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_specs()
    if str(spec) in shipped:
        return shipped[str(spec)]
    hint = difflib.get_close_matches(str(spec), list(shipped), n=1)
    fix = f"; did you mean {hint[0]}?" if hint else ""
    raise SpecError(f"spec {str(spec)!r}: no such file, and no shipped spec of that name{fix} "
                    f"(shipped: {', '.join(shipped)})")


def _harness_validator() -> Validator | None:
    import harness

    # harness.validate_config checks registry names without loading data; a harness
    # without it (an older checkout) leaves those names to be checked when a trial runs.
    return getattr(harness, "validate_config", None)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; each key may appear once", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
