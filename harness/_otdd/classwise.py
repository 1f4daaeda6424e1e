"""ORCA's class-wise dataset distance: the labelled source against each target class as one unlabelled set."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from .data import LabelledSet
from .distance import Settings, WarmStarts, _pair


def classwise(
    p: LabelledSet,
    p_stats: object,
    p_self: Optional[torch.Tensor],
    q: LabelledSet,
    settings: Settings,
    max_per_class: Optional[int],
    warm: Optional[WarmStarts] = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Return Σ_c w_c · OTDD(p, first ``max_per_class`` rows of target class c) (0-dim float64) and diagnostics.

    w_c is class c's frequency in all of q (before the cap, as ORCA weights by the
    whole target set); a class left with fewer than 2 rows is skipped, as ORCA's
    ``feats.shape[0] > 1`` does (its weight is not given to the others).
    """
    weights = q.counts / q.n
    value = torch.zeros((), dtype=torch.float64, device=p.x.device)
    values: list[float] = []
    used: list[int] = []
    for c in range(q.k):
        x = q.block(c) if max_per_class is None else q.block(c)[:max_per_class]
        if x.shape[0] < 2:
            continue
        one = LabelledSet(x, torch.zeros(x.shape[0], dtype=torch.int64, device=x.device),
                          np.array([0, x.shape[0]], dtype=np.int64), q.classes[c: c + 1])
        v, _ = _pair(p, p_stats, p_self, one, settings, warm, f"[{c}]")
        value = value + float(weights[c]) * v
        values.append(float(v.detach()))
        used.append(c)
    diag = {"value": float(value.detach()), "class_weights": weights, "class_values": values,
            "classes_used": q.classes[used], "source_classes": p.classes, "target_classes": q.classes,
            "n_source": p.n, "n_target": q.n, "inner": settings.inner.name, "outer": settings.outer.name,
            "debiased": settings.outer.debiased, "max_per_class": max_per_class}
    return value, diag
