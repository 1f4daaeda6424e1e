"""The spec's ``analysis:`` settings and ``hypotheses:``: validated into frozen values, errors naming the path.

The format is the contract of :mod:`analysis` (which reads it back from the stored spec dict)::

    analysis: {margin: 0.01, alpha: 0.05, rho_weak: 0.3}
    hypotheses:
      - {id: proxy-irrelevant, says: ..., kind: no_change, factor: embedder.proxy, level: fake,
         levels: each, reference: vocab, tasks: all, across: all}
      - {id: body-critical, kind: helps, factor: finetune.freeze,
         groups: {body trained: [none, embedder], body frozen: [body, layernorm-only]},
         level: body trained, reference: body frozen}
      - {id: some-training-helps-1d, all_of: [some-helps-1d, more-no-gain-1d]}
      - {id: otdd-not-predictive, kind: no_prediction, x: otdd_after, better: lower, tasks: all}
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.contract import RESULT_ATTRS

from ._types import Factor, Scalar

if TYPE_CHECKING:
    from ._parser import SpecParser

__all__ = ["ACROSS", "BETTER", "HYPOTHESIS_KINDS", "AnalysisSettings", "Hypothesis", "parse_analysis",
           "parse_hypotheses"]

HYPOTHESIS_KINDS = ("no_change", "no_gain", "not_worse", "helps", "predicts", "no_prediction")
_CORRELATION_KINDS = ("predicts", "no_prediction")
ACROSS = "all"
BETTER = ("lower", "higher")
_LEVELS = ("each", "some")
_MODALITIES = ("all", "1d", "2d")
_ANALYSIS_KEYS = ("margin", "alpha", "rho_weak")
BEST_BASELINE = "best_baseline"
"""``reference: best_baseline``: the level against every baseline of the task, each of which it must beat."""
_CONTRAST_KEYS = ("id", "says", "kind", "factor", "level", "levels", "reference", "groups", "tasks", "across")
_CORRELATION_KEYS = ("id", "says", "kind", "x", "better", "tasks", "across")
_ALL_OF_KEYS = ("id", "says", "all_of")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class AnalysisSettings:
    """``analysis:``: the margin (None = the metric's default), alpha and rho_weak of the verdicts."""

    margin: float | None = None
    alpha: float = 0.05
    rho_weak: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as written in a spec (margin only when set)."""
        out: dict[str, Any] = {"alpha": self.alpha, "rho_weak": self.rho_weak}
        if self.margin is not None:
            out = {"margin": self.margin, **out}
        return out


@dataclass(frozen=True)
class Hypothesis:
    """One pre-registered hypothesis (a contrast, a correlation, or ``all_of`` other hypotheses)."""

    id: str
    says: str = ""
    kind: str = ""
    factor: str = ""
    level: tuple[Scalar, ...] = ()
    levels: str = "each"
    reference: Scalar = None
    groups: tuple[tuple[str, tuple[Scalar, ...]], ...] = ()
    tasks: str | tuple[str, ...] = "all"
    across: str | int = ACROSS
    all_of: tuple[str, ...] = ()
    x: str = ""
    better: str = "lower"

    def to_dict(self) -> dict[str, Any]:
        """Return the hypothesis as written in a spec (canonical: every key of its form)."""
        head: dict[str, Any] = {"id": self.id, "says": self.says}
        if self.all_of:
            return {**head, "all_of": list(self.all_of)}
        tail = {"tasks": self.tasks if isinstance(self.tasks, str) else list(self.tasks), "across": self.across}
        if self.kind in _CORRELATION_KINDS:
            return {**head, "kind": self.kind, "x": self.x, "better": self.better, **tail}
        out = {**head, "kind": self.kind, "factor": self.factor,
               "level": self.level[0] if len(self.level) == 1 else list(self.level), "levels": self.levels,
               "reference": self.reference}
        if self.groups:
            out["groups"] = {name: list(levels) for name, levels in self.groups}
        return {**out, **tail}


def parse_analysis(p: SpecParser, value: Any) -> AnalysisSettings:
    """Return the validated ``analysis:`` block."""
    if value is None:
        return AnalysisSettings()
    if not isinstance(value, Mapping):
        raise p.fail("analysis", f"expected a mapping such as {{margin: 0.01, alpha: 0.05}}, got {value!r}")
    _known(p, "analysis", value, _ANALYSIS_KEYS)

    def number(key: str, low: float, high: float, default: float | None) -> float | None:
        v = value.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low < v < high:
            raise p.fail(f"analysis.{key}", f"expected a number in ({low:g}, {high:g}), got {v!r}")
        return float(v)

    return AnalysisSettings(margin=number("margin", 0, math.inf, None), alpha=number("alpha", 0, 0.5, 0.05) or 0.05,
                            rho_weak=number("rho_weak", 0, 1, 0.3) or 0.3)


def _known(p: SpecParser, where: str, value: Mapping[str, Any], keys: Sequence[str]) -> None:
    for key in value:
        if key not in keys:
            hint = difflib.get_close_matches(str(key), keys, n=1)
            fix = f"did you mean {hint[0]}?" if hint else f"expected one of {', '.join(keys)}"
            raise p.fail(f"{where}.{key}", f"unknown key; {fix}")


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _tasks(p: SpecParser, where: str, value: Any, tasks: Sequence[str]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        if value not in _MODALITIES:
            raise p.fail(where, f"expected one of {list(_MODALITIES)} or a list of the spec's tasks, got {value!r}")
        return value
    items = p.listing(where, value, "tasks: all, tasks: 1d, or a list of the spec's tasks")
    unknown = [t for t in items if t not in tasks]
    if unknown:
        raise p.fail(where, f"{unknown} are not tasks of this spec; expected some of {list(tasks)}")
    return tuple(items)


def _across(p: SpecParser, where: str, value: Any) -> str | int:
    if value == ACROSS:
        return ACROSS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise p.fail(where, f"expected all or a positive integer k (at least k tasks must show it), got {value!r}")
    return value


def _contrast(p: SpecParser, where: str, item: Mapping[str, Any], factors: Sequence[Factor],
              tasks: Sequence[str]) -> Hypothesis:
    _known(p, where, item, _CONTRAST_KEYS)
    paths = {f.path: f for f in factors}
    path = item.get("factor")
    if path not in paths:
        raise p.fail(f"{where}.factor", f"expected one of the spec's factors {list(paths)}, got {path!r}")
    declared = paths[path].levels
    raw_groups = item.get("groups") or {}
    if not isinstance(raw_groups, Mapping):
        raise p.fail(f"{where}.groups", f"expected a mapping of group name -> list of levels, got {raw_groups!r}")
    groups = []
    for name, members in raw_groups.items():
        items = p.listing(f"{where}.groups.{name}", members, "a list of the factor's levels")
        coerced = tuple(p.coerce(f"{where}.groups.{name}", path, v) for v in items)
        missing = [v for v in coerced if not any(_same(v, d) for d in declared)]
        if missing:
            raise p.fail(f"{where}.groups.{name}", f"{missing} are not levels of {path} ({list(declared)})")
        groups.append((str(name), coerced))
    names = [g for g, _ in groups]

    def one(key: str, v: Any) -> Scalar:
        if isinstance(v, str) and v in names:
            return v
        if key == "reference" and v == BEST_BASELINE:  # every baseline of the task (the spec's baselines:)
            return v
        c = p.coerce(f"{where}.{key}", path, v)
        if not any(_same(c, d) for d in declared):
            raise p.fail(f"{where}.{key}", f"{v!r} is neither a level of {path} ({list(declared)}) nor a group "
                         f"of groups: ({names})")
        return c

    for key in ("level", "reference"):
        if key not in item:
            raise p.fail(where, f"missing {key}; a {item.get('kind')} hypothesis compares a level with a reference")
    raw = item["level"] if isinstance(item["level"], list) else [item["level"]]
    level = tuple(one("level", v) for v in raw)
    reference = one("reference", item["reference"])
    if any(_same(v, reference) for v in level):
        raise p.fail(f"{where}.level", f"{reference!r} is also the reference; compare a level with another one")
    levels = item.get("levels", "each")
    if levels not in _LEVELS:
        raise p.fail(f"{where}.levels", f"expected each or some, got {levels!r}")
    return Hypothesis(id=item["id"], says=str(item.get("says", "")), kind=item["kind"], factor=path, level=level,
                      levels=levels, reference=reference, groups=tuple(groups),
                      tasks=_tasks(p, f"{where}.tasks", item.get("tasks", "all"), tasks),
                      across=_across(p, f"{where}.across", item.get("across", ACROSS)))


def _correlation(p: SpecParser, where: str, item: Mapping[str, Any], tasks: Sequence[str]) -> Hypothesis:
    _known(p, where, item, _CORRELATION_KEYS)
    x = item.get("x")
    numeric = [a for a in RESULT_ATTRS if a.startswith(("otdd", "val", "test")) and not a.endswith("curve")]
    if not isinstance(x, str) or not x:
        raise p.fail(f"{where}.x", f"expected a recorded numeric result such as {numeric}, got {x!r}")
    better = item.get("better", "lower")
    if better not in BETTER:
        raise p.fail(f"{where}.better", f"expected lower or higher (which x should go with a better score), "
                     f"got {better!r}")
    return Hypothesis(id=item["id"], says=str(item.get("says", "")), kind=item["kind"], x=x, better=better,
                      tasks=_tasks(p, f"{where}.tasks", item.get("tasks", "all"), tasks),
                      across=_across(p, f"{where}.across", item.get("across", ACROSS)))


def parse_hypotheses(p: SpecParser, value: Any, factors: Sequence[Factor],
                     tasks: Sequence[str]) -> tuple[Hypothesis, ...]:
    """Return the validated ``hypotheses:`` (ids unique; ``all_of`` names other hypotheses)."""
    if value is None:
        return ()
    items = p.listing("hypotheses", value, "a list of {id: ..., kind: ..., ...}")
    out: list[Hypothesis] = []
    for i, item in enumerate(items):
        where = f"hypotheses[{i}]"
        if not isinstance(item, Mapping):
            raise p.fail(where, f"expected a mapping with id and kind (or all_of), got {item!r}")
        hid = item.get("id")
        if not isinstance(hid, str) or not _ID_RE.match(hid):
            raise p.fail(f"{where}.id", f"expected an id of letters, digits, '.', '_' or '-', got {hid!r}")
        where = f"hypotheses.{hid}"
        if any(h.id == hid for h in out):
            raise p.fail(where, "duplicate id; give each hypothesis its own id")
        if "all_of" in item:
            _known(p, where, item, _ALL_OF_KEYS)
            parts = p.listing(f"{where}.all_of", item["all_of"], "a list of other hypotheses' ids")
            ids = [str(x.get("id")) for x in items if isinstance(x, Mapping)]
            bad = [x for x in parts if x not in ids or x == hid]
            if bad:
                raise p.fail(f"{where}.all_of", f"{bad} are not other hypotheses of this spec; expected ids from "
                             f"{[x for x in ids if x != hid]}")
            out.append(Hypothesis(id=hid, says=str(item.get("says", "")), all_of=tuple(map(str, parts))))
            continue
        kind = item.get("kind")
        if kind not in HYPOTHESIS_KINDS:
            hint = difflib.get_close_matches(str(kind), HYPOTHESIS_KINDS, n=1)
            fix = f"; did you mean {hint[0]}?" if hint else ""
            raise p.fail(f"{where}.kind", f"expected one of {list(HYPOTHESIS_KINDS)} (or all_of: [ids]), "
                         f"got {kind!r}{fix}")
        out.append(_correlation(p, where, item, tasks) if kind in _CORRELATION_KINDS
                   else _contrast(p, where, item, factors, tasks))
    _no_cycles(p, out)
    return tuple(out)


def _no_cycles(p: SpecParser, hypotheses: list[Hypothesis]) -> None:
    parts = {h.id: h.all_of for h in hypotheses}

    def visit(hid: str, path: tuple[str, ...]) -> None:
        if hid in path:
            raise p.fail(f"hypotheses.{hid}.all_of", f"all_of refers back to itself ({' -> '.join(path + (hid,))})")
        for part in parts.get(hid, ()):
            visit(part, path + (hid,))

    for h in hypotheses:
        visit(h.id, ())

