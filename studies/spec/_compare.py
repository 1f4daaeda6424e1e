"""Whether a spec fits the study it names: the same, or one that only adds tasks, seeds, levels or slots."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from harness.contract import PARAM_SEED, PARAM_TASK

from ._model import StudySpec
from ._parser import DEFAULT_TRIAL_FN
from ._types import SpecError

__all__ = ["compare_specs", "in_study_order"]


def compare_specs(old: StudySpec, new: StudySpec, study: str, old_base: Mapping[str, Any] | None = None) -> None:
    """Raise SpecError unless ``new`` equals ``old`` or only adds tasks, seeds, levels or slots.

    ``old_base`` is the study's resolved base config (flat path -> value) as recorded
    at creation; it catches a base that changed through harness defaults too.
    """
    fix = f"; run the new spec as a new study with --study-name, or keep {study!r}'s settings"
    if set(old.factor_paths) != set(new.factor_paths):
        added = sorted(set(new.factor_paths) - set(old.factor_paths))
        removed = sorted(set(old.factor_paths) - set(new.factor_paths))
        raise SpecError(f"factors: study {study!r} varies {old.factor_paths}, this spec varies "
                        f"{new.factor_paths} (added {added}, removed {removed}); a study's factors cannot "
                        f"change{fix}")
    skip = {PARAM_TASK, PARAM_SEED, *new.factor_paths, *(d.path for d in new.search)}
    before = dict(old_base) if old_base is not None else old.base_settings()
    after = new.base_settings()
    changed = [p for p in after if p in before and p not in skip and before[p] != after[p]]
    if changed:
        shown = ", ".join(f"{p} (study: {before[p]!r}, this spec: {after[p]!r})" for p in changed[:4])
        raise SpecError(f"base: differs from study {study!r} at {shown}; cells run with different fixed "
                        f"settings are not comparable (the value comes from base:, --set or the harness "
                        f"defaults){fix}")
    for key in ("metric", "direction", "sampler"):
        if getattr(old, key) != getattr(new, key):
            raise SpecError(f"{key}: study {study!r} uses {getattr(old, key)!r}, this spec {getattr(new, key)!r}"
                            f"{fix}")
    if old.adaptive != new.adaptive:
        shown = [s.to_dict() if s is not None else "a fixed list of seeds" for s in (old.adaptive, new.adaptive)]
        raise SpecError(f"seeds: study {study!r} has {shown[0]}, this spec {shown[1]}; the looks of an adaptive "
                        f"study are fixed when it is created (its alpha spending depends on them){fix}")
    if old.trial_fn != new.trial_fn:
        raise SpecError(f"trial_fn: study {study!r} runs {old.trial_fn or DEFAULT_TRIAL_FN}, this spec "
                        f"{new.trial_fn or DEFAULT_TRIAL_FN}; every cell of a study runs one trial function{fix}")
    if [d.to_dict() | {"path": d.path} for d in old.search] != [d.to_dict() | {"path": d.path} for d in new.search]:
        raise SpecError(f"search: differs from study {study!r}'s search space{fix}")
    _check_superset("tasks", list(old.tasks), list(new.tasks), study)
    _check_superset("seeds", list(old.seeds), list(new.seeds), study)
    levels = {f.path: list(f.levels) for f in new.factors}
    for factor in old.factors:
        _check_superset(f"factors.{factor.path}", list(factor.levels), levels[factor.path], study)
    for task, names in old.baselines:
        _check_superset(f"baselines.{task}", list(names), list(new.baselines_of(task)), study)
    if new.trials_per_cell < old.trials_per_cell:
        raise SpecError(f"trials_per_cell: study {study!r} has {old.trials_per_cell}; a spec may raise it, "
                        f"not lower it{fix}")


def _check_superset(where: str, old: list[Any], new: list[Any], study: str) -> None:
    missing = [v for v in old if not any(v == n and type(v) is type(n) for n in new)]
    if missing:
        raise SpecError(f"{where}: study {study!r} has {old}; a spec may add values but not drop "
                        f"{missing}; to run a subset, use a new --study-name")


def in_study_order(old: StudySpec, new: StudySpec) -> StudySpec:
    """Return ``new`` with its tasks, seeds and levels in ``old``'s order, values ``old`` lacks after them.

    Call after :func:`compare_specs`: ``new`` has every value of ``old``. Optuna's
    categorical choices are ordered, so a spec that only lists the same levels in
    another order must not count as a change (that would rewrite the study).
    """
    levels = {f.path: f.levels for f in old.factors}
    factors = tuple(dataclasses.replace(f, levels=_ordered(levels[f.path], f.levels)) for f in new.factors)
    return dataclasses.replace(new, tasks=_ordered(old.tasks, new.tasks), seeds=_ordered(old.seeds, new.seeds),
                               factors=factors)


def _ordered(old: Sequence[Any], new: Sequence[Any]) -> tuple[Any, ...]:
    def same(a: Any, b: Any) -> bool:
        return bool(a == b and type(a) is type(b))

    return tuple(old) + tuple(v for v in new if not any(same(v, o) for o in old))
