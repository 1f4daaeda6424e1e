"""Validation of study specs: a parsed YAML mapping -> the fields of a StudySpec, or SpecError naming the path and the fix."""

from __future__ import annotations

import difflib
import math
import os
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.config import TrialConfig, config_paths, flatten
from harness.contract import BASELINE, TEST_SCORE, VAL_SCORE, check_study_name
from harness.errors import ConfigError

from ._hypotheses import parse_analysis, parse_hypotheses
from ._types import (DIRECTIONS, METRICS, SAMPLERS, SPENDINGS, AdaptiveSeeds, Factor, SearchDimension, SpecError,
                     Validator)

if TYPE_CHECKING:
    from ._model import StudySpec

__all__ = ["SpecParser"]

_KEYS = ("name", "description", "tasks", "seeds", "factors", "base", "metric", "direction",
         "search", "trials_per_cell", "sampler", "baselines", "analysis", "hypotheses", "trial_fn", "adaptive")
_DIMENSION_KEYS = ("low", "high", "log", "step", "choices")
_ADAPTIVE_KEYS = ("start", "step", "max", "spending")
_OWN_FACTORS = {"task": "tasks", "seed": "seeds"}
_PATHS = config_paths()
_SECTIONS = {p.split(".")[0] for p in _PATHS if "." in p}


class SpecParser:
    """Turns a parsed YAML mapping into the validated fields of a StudySpec, one key at a time."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.free = False
        """True with a trial function of the user's (``trial_fn:``): factor and base names are then free."""

    def fail(self, where: str, message: str) -> SpecError:
        return SpecError(f"{self.source}: {where}: {message}")

    def parse(self, data: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Return StudySpec keyword arguments from a parsed YAML mapping and ``--set`` overrides."""
        if not isinstance(data, Mapping):
            got = "an empty file" if data is None else type(data).__name__
            raise SpecError(f"{self.source}: expected a mapping with keys name, tasks, seeds, factors, base; "
                            f"got {got}")
        for key in data:
            if key not in _KEYS:
                hint = difflib.get_close_matches(str(key), _KEYS, n=1)
                fix = f"did you mean {hint[0]}?" if hint else f"expected one of {', '.join(_KEYS)}"
                raise self.fail(str(key), f"unknown spec key; {fix}")
        for key in ("name", "tasks", "seeds"):
            if key not in data:
                raise self.fail(key, f"missing; a spec needs {key}: ({_EXAMPLES[key]})")
        name = self.name(data["name"])
        trial_fn = self.trial_fn(data.get("trial_fn"))
        self.free = trial_fn is not None
        description = data.get("description", "") or ""
        if not isinstance(description, str):
            raise self.fail("description", f"expected a string, got {type(description).__name__}")
        tasks = self.tasks(data["tasks"])
        adaptive = self.adaptive(data["seeds"], data.get("adaptive"))
        seeds = tuple(range(adaptive.max)) if adaptive is not None else self.seeds(data["seeds"])
        factors = self.factors(data.get("factors") or {})
        base = self.base(data.get("base") or {}, overrides, factors)
        metric = self.choice("metric", data.get("metric", TEST_SCORE), list(METRICS))
        direction = self.choice("direction", data.get("direction", "maximize"), list(DIRECTIONS))
        search = self.search(data.get("search") or {}, factors, base)
        sampler = self.choice("sampler", data.get("sampler", "tpe"), list(SAMPLERS))
        trials = data.get("trials_per_cell", 1)
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise self.fail("trials_per_cell", f"expected a positive integer, got {trials!r}")
        self.grid_size(len(tasks), len(seeds), [len(f.levels) for f in factors], trials)
        if search and metric != VAL_SCORE:
            raise self.fail("metric", f"a spec with search: must optimise val_score, not {metric}: tuning "
                            "hyperparameters on the test split selects them on the data that should judge "
                            "them; set metric: val_score (test_score is still recorded on every trial)")
        if not search and trials > 1:
            raise self.fail("trials_per_cell", f"{trials} trials of a cell without search: would repeat one "
                            "configuration; add search: dimensions, or add seeds for repetitions")
        if not search and "sampler" in data:
            raise self.fail("sampler", "a sampler tunes search: dimensions; this spec has none")
        baselines = self.baselines(data.get("baselines"), tasks, factors, base)
        analysis = parse_analysis(self, data.get("analysis"))
        hypotheses = parse_hypotheses(self, data.get("hypotheses"), factors, tasks)
        if adaptive is not None and not any(h.kind not in ("predicts", "no_prediction") for h in hypotheses):
            raise self.fail("seeds", "adaptive seeds run until the spec's hypotheses are decided; declare "
                            "hypotheses: comparing levels (no_change, no_gain, not_worse or helps), or give a "
                            "list of seeds")
        return {"name": name, "tasks": tasks, "seeds": seeds, "factors": factors, "base": base, "metric": metric,
                "direction": direction, "search": search, "trials_per_cell": trials, "sampler": sampler,
                "description": description, "baselines": baselines, "analysis": analysis, "hypotheses": hypotheses,
                "trial_fn": trial_fn, "adaptive": adaptive}

    # -- keys -------------------------------------------------------------------------------

    def name(self, value: Any) -> str:
        try:
            check_study_name(value, "")
        except ValueError as exc:
            raise self.fail("name", str(exc).strip()) from None
        return value

    def trial_fn(self, value: Any) -> str | None:
        """Return the ``trial_fn:`` of the spec (``module:function``), or None for ``harness.run_trial``."""
        if value is None or value == DEFAULT_TRIAL_FN:
            return None
        module, sep, attr = value.partition(":") if isinstance(value, str) else ("", "", "")
        if not sep or not module.strip() or not attr.strip():
            raise self.fail("trial_fn", f"expected module:function (e.g. mypackage.trials:run), got {value!r}")
        return str(value)

    def baselines(self, value: Any, tasks: tuple[str, ...], factors: Sequence[Factor],
                  base: Mapping[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Return (task, baseline names) pairs from a list (every task), ``default``, or a task -> list mapping.

        ``default`` stays as the name ``default``, resolved per task by ``load_spec`` (it needs the
        task registry); names are checked against the harness's baselines there too.
        """
        if value is None:
            return ()
        if self.free:
            raise self.fail("baselines", "baselines run through harness.run_trial, not through trial_fn; with a "
                            "trial function of your own, make each baseline a level of a factor it reads "
                            "(e.g. factors: {method: [mine, knn]})")
        example = "baselines: [knn, logreg], baselines: default, or baselines: {digits: [knn]}"
        if BASELINE in {f.path for f in factors} or BASELINE in base:
            raise self.fail("baselines", f"{BASELINE} is set in factors or base too; list baselines under "
                            "baselines: only (each one is a cell of its own per task and seed)")
        if value == DEFAULT_BASELINES:
            per_task = {task: [DEFAULT_BASELINES] for task in tasks}
        elif isinstance(value, Mapping):
            per_task = {}
            for task, names in value.items():
                if task not in tasks:
                    raise self.fail(f"baselines.{task}", f"not a task of this spec (tasks: {', '.join(tasks)})")
                per_task[task] = self.listing(f"baselines.{task}", names, example)
        else:
            listed = self.listing("baselines", value, example)
            per_task = {task: listed for task in tasks}
        out = []
        for task in tasks:
            names = per_task.get(task, [])
            for i, name in enumerate(names):
                if not isinstance(name, str) or not name:
                    raise self.fail(f"baselines[{i}]", f"expected a baseline name such as knn, got {name!r}")
            self.unique(f"baselines.{task}", list(names))
            if names:
                out.append((task, tuple(names)))
        return tuple(out)

    def grid_size(self, tasks: int, seeds: int, levels: list[int], slots: int) -> None:
        """Refuse a grid of more than ``ORCA_ABLATE_MAX_CELLS`` cells before any is built."""
        cells = tasks * seeds * slots * math.prod(levels)
        limit = max_cells()
        if cells > limit:
            raise self.fail("factors", f"the grid has {cells:,} cells ({tasks} tasks x {seeds} seeds x "
                            f"{' x '.join(str(n) for n in levels) or '1'} levels x {slots} slots), more than the cap "
                            f"of {limit:,}; drop levels or seeds, or raise the cap with "
                            f"ORCA_ABLATE_MAX_CELLS={cells}")

    def tasks(self, value: Any) -> tuple[str, ...]:
        items = self.listing("tasks", value, _EXAMPLES["tasks"])
        for i, task in enumerate(items):
            if not isinstance(task, str) or not task:
                raise self.fail(f"tasks[{i}]", f"expected a task name such as digits or \"ucr:ECG200\", got {task!r}")
        self.unique("tasks", items)
        return tuple(items)

    def seeds(self, value: Any) -> tuple[int, ...]:
        items = self.listing("seeds", value, _EXAMPLES["seeds"])
        for i, seed in enumerate(items):
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
                raise self.fail(f"seeds[{i}]", f"expected an integer from 0 to {SEED_LIMIT - 1}, got {seed!r}")
        self.unique("seeds", items)
        return tuple(items)

    def adaptive(self, value: Any, canonical: Any) -> AdaptiveSeeds | None:
        """Return ``seeds: {start, step, max[, spending]}`` (or the canonical ``adaptive:`` block), else None."""
        if canonical is not None:  # a stored spec: seeds is the declared list, adaptive the design
            value = canonical
        elif not isinstance(value, Mapping):
            return None
        example = "seeds: {start: 3, step: 2, max: 20}"
        where = "seeds" if canonical is None else "adaptive"
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping such as {example}, got {value!r}")
        self.known_keys(where, value, _ADAPTIVE_KEYS, "key")
        numbers = {}
        for key, default in (("start", 3), ("step", 2), ("max", None)):
            number = value.get(key, default)
            if number is None:
                raise self.fail(f"{where}.max", f"missing; adaptive seeds need a maximum, e.g. {example}")
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise self.fail(f"{where}.{key}", f"expected a positive integer, got {number!r}")
            numbers[key] = number
        if numbers["start"] < 3:
            raise self.fail(f"{where}.start", f"the first look needs at least 3 seeds (a t bound), got {numbers['start']}")
        if numbers["max"] < numbers["start"]:
            raise self.fail(f"{where}.max", f"max ({numbers['max']}) is below start ({numbers['start']})")
        if numbers["max"] > 1000:
            raise self.fail(f"{where}.max", f"at most 1000 seeds, got {numbers['max']}")
        spending = self.choice(f"{where}.spending", value.get("spending", "pocock"), list(SPENDINGS))
        return AdaptiveSeeds(numbers["start"], numbers["step"], numbers["max"], spending)

    def factors(self, value: Any) -> tuple[Factor, ...]:
        out = []
        for path, levels in self.flat("factors", value).items():
            where = f"factors.{path}"
            self.settable("factors", path)
            items = self.listing(where, levels, "a list of levels, e.g. [0, 2, 8]")
            coerced = tuple(self.coerce(f"{where}[{i}]", path, v) for i, v in enumerate(items))
            self.unique(where, list(coerced))
            out.append(Factor(path, coerced))
        return tuple(out)

    def base(self, value: Any, overrides: Mapping[str, Any], factors: Sequence[Factor]) -> dict[str, Any]:
        entries = [("base", self.flat("base", value)), ("--set", dict(overrides))]
        factor_paths = {f.path for f in factors}
        out: dict[str, Any] = {}
        for prefix, flat in entries:
            for path, raw in flat.items():
                where = f"{prefix}.{path}" if prefix == "base" else f"--set {path}"
                self.settable(prefix, path)
                if path in factor_paths:
                    raise self.fail(where, f"{path} is a factor of this spec; a path is either a factor "
                                    "(varied) or in base (fixed), not both")
                out[path] = self.coerce(where, path, raw, scalar_only=False)
        return out

    def search(self, value: Any, factors: Sequence[Factor], base: Mapping[str, Any]) -> tuple[SearchDimension, ...]:
        out = []
        taken = {f.path: "factors" for f in factors} | {p: "base" for p in base}
        for path, dim in self.flat("search", value).items():
            where = f"search.{path}"
            self.settable("search", path)
            if path in taken:
                raise self.fail(where, f"{path} is also in {taken[path]}; a path is searched, varied or "
                                "fixed, only one of these")
            out.append(self.dimension(where, path, dim))
        return tuple(out)

    def dimension(self, where: str, path: str, dim: Any) -> SearchDimension:
        example = "{low: 1.0e-4, high: 1.0e-2, log: true} or {choices: [16, 32]}"
        if not isinstance(dim, Mapping):
            raise self.fail(where, f"expected a mapping such as {example}, got {dim!r}")
        self.known_keys(where, dim, _DIMENSION_KEYS, "search key")
        kind = self.kind(path, dim)
        if "choices" in dim:
            if set(dim) != {"choices"}:
                raise self.fail(where, "give either choices or a range (low, high, log, step), not both")
            items = self.listing(f"{where}.choices", dim["choices"], "a list such as [16, 32, 64]")
            choices = tuple(self.coerce(f"{where}.choices[{i}]", path, v) for i, v in enumerate(items))
            self.unique(f"{where}.choices", list(choices))
            return SearchDimension(path, choices=choices)
        if kind not in (int, float):
            raise self.fail(where, f"{path} holds a {kind.__name__}; search it with choices: [...]")
        for key in ("low", "high"):
            if key not in dim:
                raise self.fail(where, f"missing {key}; a range needs low and high, e.g. {example}")
        low = self.coerce(f"{where}.low", path, dim["low"])
        high = self.coerce(f"{where}.high", path, dim["high"])
        if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
            raise self.fail(where, f"low and high must be numbers, got {low!r} and {high!r}")
        if not low < high:
            raise self.fail(where, f"low ({low}) must be below high ({high})")
        log = dim.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{where}.log", f"expected true or false, got {log!r}")
        step = dim.get("step")
        if step is not None:
            step = self.coerce(f"{where}.step", path, step)
            if not isinstance(step, (int, float)) or step <= 0:
                raise self.fail(f"{where}.step", f"expected a positive number, got {step!r}")
            if log:
                raise self.fail(where, "log and step cannot be combined (Optuna samples a log range continuously)")
        if log and low <= 0:
            raise self.fail(f"{where}.low", f"a log range needs low > 0, got {low}")
        return SearchDimension(path, low=low, high=high, log=log, step=step, integer=kind is int)

    # -- helpers ----------------------------------------------------------------------------

    def known_keys(self, where: str, mapping: Mapping[str, Any], keys: Sequence[str], what: str) -> None:
        """Raise SpecError at the first key of ``mapping`` not in ``keys``, with a "did you mean" hint."""
        for key in mapping:
            if key not in keys:
                hint = difflib.get_close_matches(str(key), keys, n=1)
                fix = f"did you mean {hint[0]}?" if hint else f"expected one of {', '.join(keys)}"
                raise self.fail(f"{where}.{key}", f"unknown {what}; {fix}")

    def kind(self, path: str, dim: Mapping[str, Any]) -> type:
        """Return the value type of a searched path: the TrialConfig field's, or (free names) that of low/high."""
        if not self.free:
            return _path_type(path)
        bounds = [dim.get(k) for k in ("low", "high", "step") if dim.get(k) is not None]
        if bounds and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            return int
        return float if all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds) else str

    def choice(self, where: str, value: Any, choices: list[str]) -> str:
        if value not in choices:
            hint = difflib.get_close_matches(str(value), choices, n=1)
            fix = f"; did you mean {hint[0]}?" if hint else ""
            raise self.fail(where, f"expected one of {choices}, got {value!r}{fix}")
        return str(value)

    def listing(self, where: str, value: Any, example: str) -> list[Any]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise self.fail(where, f"expected a list, got {value!r}; write {example}")
        if not value:
            raise self.fail(where, f"is empty; write {example}")
        return list(value)

    def unique(self, where: str, items: list[Any]) -> None:
        seen: list[Any] = []
        for item in items:
            # 1 == 1.0 == True in Python; compare with the type so that [1, true] are two levels.
            if any(item == s and type(item) is type(s) for s in seen):
                raise self.fail(where, f"duplicate value {item!r}; list each value once")
            seen.append(item)

    def flat(self, where: str, value: Any) -> dict[str, Any]:
        """Return dotted path -> value; nested section mappings (``embedder: {epochs: [..]}``) are flattened."""
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping of config paths, got {value!r}")
        if self.free:  # names of the user's trial function: kept as written, nothing flattened
            for key in value:
                if not isinstance(key, str) or not key:
                    raise self.fail(where, f"keys must be non-empty strings, got {key!r}")
            return dict(value)
        try:
            return flatten(value, sections=_SECTIONS)
        except ConfigError as exc:  # a key that is not a string
            raise self.fail(where, f"keys must be config paths (strings): {exc}") from None

    def settable(self, where: str, path: str) -> None:
        label = f"{where}.{path}" if where != "--set" else f"--set {path}"
        if path in _OWN_FACTORS:
            raise self.fail(label, f"the {path} is a factor of its own; list values under "
                            f"{_OWN_FACTORS[path]}: at the top of the spec")
        if self.free:
            if path == BASELINE:
                raise self.fail(label, f"{BASELINE} is reserved for the harness's baseline cells; use another name")
            return
        if path not in _PATHS:
            try:
                TrialConfig().get(path)
            except ConfigError as exc:  # harness words it: "unknown config path; did you mean ...?"
                raise self.fail(label, _strip_path(str(exc), path)) from None

    def coerce(self, where: str, path: str, value: Any, scalar_only: bool = True) -> Any:
        if scalar_only and not (value is None or isinstance(value, (str, int, float, bool))):
            raise self.fail(where, f"expected a plain value (string, number, bool or null), got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(where, f"expected a finite number, got {value!r}")
        if self.free:  # the user's trial function reads it as written
            return value
        try:
            coerced = TrialConfig().override({path: value}).get(path)
        except ConfigError as exc:
            message = _strip_path(str(exc), path)
            if isinstance(value, bool) and _path_type(path) is str:
                message += "; YAML reads yes/no/on/off/true/false as booleans, so quote the level ('no')"
            raise self.fail(where, message) from None
        return coerced

    def check_names(self, spec: StudySpec, validator: Validator) -> None:
        """Run the registry validator on every task, and on every factor level and choice with each task."""
        base = spec.base_config()
        levels: list[tuple[str, dict[str, Any]]] = []
        for factor in spec.factors:
            levels += [(f"factors.{factor.path}[{i}]", {factor.path: v}) for i, v in enumerate(factor.levels)]
        for dim in spec.search:
            levels += [(f"search.{dim.path}.choices[{i}]", {dim.path: v}) for i, v in enumerate(dim.choices or ())]
        for i, task in enumerate(spec.tasks):
            self.validate(validator, f"tasks[{i}]", base.override({"task": task}), "")
            context = f" (with task {task})" if len(spec.tasks) > 1 else ""
            for where, assignment in levels:
                self.validate(validator, where, base.override({"task": task, **assignment}), context)

    def validate(self, validator: Validator, where: str, config: TrialConfig, context: str) -> None:
        try:
            validator(config)
        except ValueError as exc:  # ConfigError, or a registry's ValueError listing the choices
            raise self.fail(where, f"{exc}{context}") from None


DEFAULT_TRIAL_FN = "harness:run_trial"
"""The trial function of a spec without ``trial_fn:`` (its names are checked against the harness)."""
DEFAULT_BASELINES = "default"
"""``baselines: default``: the harness's default baselines for each task's modality and output."""
SEED_LIMIT = 2**32
"""Seeds are 0 <= seed < 2**32 (harness.trial.SEED_LIMIT; numpy and torch seed with 32 bits)."""
MAX_CELLS = 100_000
MAX_CELLS_ENV = "ORCA_ABLATE_MAX_CELLS"


def max_cells() -> int:
    """Return the cap on a spec's cells: ``$ORCA_ABLATE_MAX_CELLS``, else 100,000."""
    raw = os.environ.get(MAX_CELLS_ENV, "")
    return int(raw) if raw.strip().isdigit() else MAX_CELLS


_EXAMPLES = {
    "name": "a study name, e.g. name: embedder-epochs",
    "tasks": "a list, e.g. tasks: [digits, \"ucr:ItalyPowerDemand\"]",
    "seeds": "a list, e.g. seeds: [0, 1, 2]",
}


def _strip_path(message: str, path: str) -> str:
    """Return a harness ConfigError message without its leading ``path: `` (the caller re-adds a longer one)."""
    return message[len(path) + 2:] if message.startswith(path + ": ") else message


def _path_type(path: str) -> type:
    """Return the value type of a TrialConfig path (int for ``int | None``)."""
    obj: Any = TrialConfig
    parts = path.split(".")
    for part in parts[:-1]:
        obj = typing.get_type_hints(obj)[part]
    tp = typing.get_type_hints(obj)[parts[-1]]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp

