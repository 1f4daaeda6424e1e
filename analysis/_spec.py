"""A reader of the hypotheses and analysis settings a study recorded in its spec (user attr ``spec``).

``analysis`` must not import ``studies``; the study layer validates the spec when it is written
(``studies.spec``), and this reader turns the stored canonical dict back into frozen values,
raising :class:`AnalysisError` on anything malformed (a hand-edited or foreign study).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analysis._columns import AnalysisError
from analysis._contrasts import level_text
from analysis._rules import KINDS

__all__ = ["DEFAULT_ALPHA", "DEFAULT_RHO_WEAK", "AnalysisSettings", "Hypothesis", "read_hypotheses",
           "read_settings"]

DEFAULT_ALPHA = 0.05
DEFAULT_RHO_WEAK = 0.3


@dataclass(frozen=True)
class AnalysisSettings:
    """The spec's ``analysis:`` block: margin (None = the metric's default), alpha and rho_weak."""

    margin: float | None = None
    alpha: float = DEFAULT_ALPHA
    rho_weak: float = DEFAULT_RHO_WEAK


@dataclass(frozen=True)
class Hypothesis:
    """One entry of the spec's ``hypotheses:``; levels are kept as text (``level_text``)."""

    id: str
    says: str = ""
    kind: str = ""  # one of KINDS, or "" for an ``all_of`` conjunction
    factor: str = ""
    level: tuple[str, ...] = ()
    levels: str = "each"  # each | some
    reference: str = ""
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tasks: str | tuple[str, ...] = "all"  # all | 1d | 2d | names
    across: str | int = "all"  # all | k
    all_of: tuple[str, ...] = ()
    x: str = ""
    better: str = "lower"

    def members(self, name: str) -> tuple[str, ...]:
        """Return the factor levels (text) that ``name`` stands for: a group's levels, or the level itself."""
        return self.groups.get(name, (name,))


def _number(where: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low < value < high:
        raise AnalysisError(f"spec {where}: expected a number in ({low:g}, {high:g}), got {value!r}")
    return float(value)


def read_settings(spec: Mapping[str, Any] | None) -> AnalysisSettings:
    """Return the ``analysis:`` settings the spec recorded (defaults when it has none)."""
    block = (spec or {}).get("analysis") or {}
    if not isinstance(block, Mapping):
        raise AnalysisError(f"spec analysis: expected a mapping of margin, alpha, rho_weak; got {block!r}")
    margin = block.get("margin")
    return AnalysisSettings(
        margin=None if margin is None else _number("analysis.margin", margin, 0, math.inf),
        alpha=_number("analysis.alpha", block.get("alpha", DEFAULT_ALPHA), 0, 0.5),
        rho_weak=_number("analysis.rho_weak", block.get("rho_weak", DEFAULT_RHO_WEAK), 0, 1),
    )


def _texts(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(level_text(v) for v in items)


def _one(where: str, item: Any) -> Hypothesis:
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
        raise AnalysisError(f"spec {where}: expected a mapping with an id, got {item!r}")
    if "all_of" in item:
        return Hypothesis(id=item["id"], says=str(item.get("says", "")), all_of=tuple(map(str, item["all_of"])))
    kind = item.get("kind")
    if kind not in KINDS:
        raise AnalysisError(f"spec {where}.kind: expected one of {list(KINDS)}, got {kind!r}")
    tasks = item.get("tasks", "all")
    across = item.get("across", "all")
    groups = {str(k): _texts(v) for k, v in (item.get("groups") or {}).items()}
    return Hypothesis(
        id=item["id"], says=str(item.get("says", "")), kind=kind, factor=str(item.get("factor", "")),
        level=_texts(item["level"]) if "level" in item else (), levels=str(item.get("levels", "each")),
        reference=level_text(item["reference"]) if "reference" in item else "", groups=groups,
        tasks=tasks if isinstance(tasks, str) else tuple(map(str, tasks)),
        across=across if isinstance(across, str) else int(across),
        x=str(item.get("x", "")), better=str(item.get("better", "lower")),
    )


def read_hypotheses(spec: Mapping[str, Any] | None) -> list[Hypothesis]:
    """Return the hypotheses the spec recorded, in spec order (empty when it declares none)."""
    items = (spec or {}).get("hypotheses") or []
    if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
        raise AnalysisError(f"spec hypotheses: expected a list, got {items!r}")
    out = [_one(f"hypotheses[{i}]", item) for i, item in enumerate(items)]
    ids = [h.id for h in out]
    for h in out:
        missing = [p for p in h.all_of if p not in ids or p == h.id]
        if missing:
            raise AnalysisError(f"spec hypothesis {h.id!r}: all_of names {missing}, which are not other "
                                f"hypotheses of the spec ({ids})")
    return out
