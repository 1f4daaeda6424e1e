"""Assembly of the dataset distance from an inner and an outer method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from .chain import ground_cost, sqdist
from .data import LabelledSet
from .inner import InnerMethod
from .outer import Candidates, OuterMethod, WarmSlot


@dataclass(frozen=True)
class Settings:
    """The configured inner and outer methods and the class-conditional switch."""

    inner: InnerMethod
    outer: OuterMethod
    class_conditional: bool


def _cost(p: LabelledSet, p_stats: object, q: LabelledSet, q_stats: object, inner: InnerMethod, symmetric: bool
          ) -> tuple[torch.Tensor, torch.Tensor, Optional[Candidates]]:
    """Return the (k_p, k_q) label distances, the (n_p, n_q) ground cost (one buffer) and candidate edges.

    The candidates are the entries of the inner method's class-pair plans (exact inner
    only), on which the exact outer solver starts; None otherwise.
    """
    d2 = sqdist(p.x, q.x)
    support: list[np.ndarray] = []
    w = inner.distances(p, p_stats, q, q_stats, d2, symmetric=symmetric, support=support)
    candidates = (support[0], support[1]) if support else None
    return w, ground_cost(d2, w, p, q), candidates


def self_term(s: LabelledSet, stats: object, settings: Settings, warm: Optional[WarmSlot] = None
              ) -> tuple[torch.Tensor, dict[str, Any]]:
    """Return OT_ε(s, s), the self-transport term of a debiased Sinkhorn divergence, and diagnostics."""
    w, cost, _ = _cost(s, stats, s, stats, settings.inner, True)
    return settings.outer.transport(s, s, w, cost, symmetric=True, warm=warm)


class WarmStarts:
    """Warm-start slots of the transport problems of one source against a changing target (by name)."""

    def __init__(self) -> None:
        self._slots: dict[str, WarmSlot] = {}

    def slot(self, name: str) -> WarmSlot:
        """Return the slot called ``name``, created empty on first use."""
        return self._slots.setdefault(name, WarmSlot())


def _pair(
    p: LabelledSet,
    p_stats: object,
    p_self: Optional[torch.Tensor],
    q: LabelledSet,
    settings: Settings,
    warm: Optional[WarmStarts],
    part: str,
) -> tuple[torch.Tensor, dict[str, Any]]:
    q_stats = settings.inner.summarize(q)
    w, cost, candidates = _cost(p, p_stats, q, q_stats, settings.inner, False)
    value, diag = settings.outer.transport(p, q, w, cost, warm=warm.slot(f"cross{part}") if warm else None,
                                           candidates=candidates)
    del cost
    diag = dict(diag, label_distances=w.detach())
    if settings.outer.debiased:
        assert p_self is not None
        q_self, q_diag = self_term(q, q_stats, settings, warm.slot(f"target-self{part}") if warm else None)
        diag.update(cross_term=float(value.detach()), source_self_term=float(p_self.detach()),
                    target_self_term=float(q_self.detach()),
                    target_self_converged=q_diag["converged"])
        value = value - 0.5 * p_self - 0.5 * q_self
    return value, diag


def otdd(
    p: LabelledSet,
    p_stats: object,
    p_self: Optional[torch.Tensor],
    q: LabelledSet,
    settings: Settings,
    warm: Optional[WarmStarts] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Return the 0-dim float64 dataset distance from source p to target q and diagnostics.

    p_stats : ``settings.inner.summarize(p)``; p_self : the source self term
    (0-dim) when the outer method is debiased, else None; ``warm`` : the
    potentials of earlier calls against targets laid out like q (Sinkhorn).
    """
    if not settings.class_conditional:
        value, diag = _pair(p, p_stats, p_self, q, settings, warm, "")
    else:
        weights = q.counts / q.n
        parts = [_pair(p, p_stats, p_self, q.single_class(b), settings, warm, f"[{b}]") for b in range(q.k)]
        value = sum((float(wb) * v for wb, (v, _) in zip(weights, parts)), torch.zeros((), dtype=torch.float64,
                                                                               device=p.x.device))
        diags = [d for _, d in parts]
        diag = {
            "label_distances": torch.cat([d["label_distances"] for d in diags], dim=1),
            "class_mass": torch.cat([float(wb) * d["class_mass"] for wb, d in zip(weights, diags)], dim=1),
            "converged": all(d["converged"] for d in diags),
            "class_weights": weights,
            "class_values": [float(v.detach()) for v, _ in parts],
            "per_class": diags,
        }
    diag.update(
        value=float(value.detach()),
        source_classes=p.classes,
        target_classes=q.classes,
        n_source=p.n,
        n_target=q.n,
        inner=settings.inner.name,
        outer=settings.outer.name,
        debiased=settings.outer.debiased,
        class_conditional=settings.class_conditional,
    )
    return value, diag
