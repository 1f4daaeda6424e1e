"""Task metrics on whole splits, and losses: registries keyed by name.

Every metric takes the outputs of a whole split and its targets in the task's
own units (dense targets decoded first) and returns one float; none averages
over chunks. Which outputs a metric understands is part of its entry
(``outputs``), so a task's extra metrics can be listed with :func:`metrics_for`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = ["LOSSES", "METRICS", "Metric", "accuracy", "get_loss", "get_metric", "macro_f1", "mean_auroc",
           "mean_average_precision", "metrics_for", "relative_l2"]

MetricFn = Callable[[torch.Tensor, torch.Tensor], float]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Metric:
    """A metric: ``fn(outputs, targets) -> float``, which way is better, and the outputs it applies to."""

    name: str
    fn: MetricFn
    direction: str  # "maximize" | "minimize"
    outputs: tuple[str, ...] = ("classes",)
    """Output kinds (``classes``, ``multilabel``, ``dense``) the metric is defined for."""

    def better(self, a: float, b: float) -> bool:
        """Return whether score ``a`` is strictly better than ``b``; NaN is worse than any number."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.direction == "maximize" else a < b


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the fraction of correct argmax predictions.  logits (N, K), y (N,) -> [0, 1]."""
    return float((logits.argmax(dim=1) == y).double().mean())


def macro_f1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the unweighted mean F1 over classes present in targets or predictions.  -> [0, 1]."""
    pred = logits.argmax(dim=1)
    classes = torch.unique(torch.cat([y, pred]))
    scores = []
    for c in classes:
        tp = ((pred == c) & (y == c)).sum().item()
        fp = ((pred == c) & (y != c)).sum().item()
        fn = ((pred != c) & (y == c)).sum().item()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(sum(scores) / len(scores))


def _per_label(score: Callable[[np.ndarray, np.ndarray], float], logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the mean of ``score(y_k, s_k)`` over labels k whose targets hold both classes (NaN if none)."""
    s = logits.detach().double().cpu().numpy()
    t = y.detach().cpu().numpy() > 0.5
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"multi-label metric: outputs {tuple(s.shape)} and targets {tuple(t.shape)} must be (N, K)")
    values = [score(t[:, k], s[:, k]) for k in range(s.shape[1]) if 0 < t[:, k].sum() < len(t)]
    return float(np.mean(values)) if values else float("nan")


def mean_auroc(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the macro AUROC over labels with both classes present.  logits (N, K), y (N, K) in {0, 1}.

    The AUROC of label k is the probability that a random positive scores above a
    random negative (ties count one half); it depends only on the ranking, so raw
    logits and sigmoid probabilities give the same value.
    """
    from sklearn.metrics import roc_auc_score

    return _per_label(lambda t, s: float(roc_auc_score(t, s)), logits, y)


def mean_average_precision(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Return the macro average precision (mAP) over labels with both classes present.

    logits (N, K), y (N, K) in {0, 1}. AP_k = Σ_n (R_n − R_{n−1}) P_n over the
    thresholds at the scores of label k (scikit-learn's definition, no interpolation).
    """
    from sklearn.metrics import average_precision_score

    return _per_label(lambda t, s: float(average_precision_score(t, s)), logits, y)


def relative_l2(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Return the mean over samples of ‖pred_n − y_n‖₂ / ‖y_n‖₂.  pred, y (N, *S) in the task's units.

    Each sample is flattened; a target with zero norm divides by 1e-12 instead.
    Lower is better.
    """
    p = pred.detach().double().reshape(len(pred), -1)
    t = y.detach().double().reshape(len(y), -1)
    if p.shape != t.shape:
        raise ValueError(f"relative_l2: outputs {tuple(pred.shape)} and targets {tuple(y.shape)} differ")
    return float(((p - t).norm(dim=1) / t.norm(dim=1).clamp_min(1e-12)).mean())


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", accuracy, "maximize", ("classes",)),
    "macro_f1": Metric("macro_f1", macro_f1, "maximize", ("classes",)),
    "auroc": Metric("auroc", mean_auroc, "maximize", ("multilabel",)),
    "map": Metric("map", mean_average_precision, "maximize", ("multilabel",)),
    "rel_l2": Metric("rel_l2", relative_l2, "minimize", ("dense",)),
}


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.float(), y.float())


def _bce_logits(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(out.float(), y.float())


LOSSES: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "bce_logits": _bce_logits,
    "mse": _mse,
}
"""Losses ``fn(outputs, targets) -> 0-dim``; dense targets arrive normalised (see ``TaskData.decode``)."""


def get_metric(name: str) -> Metric:
    """Return a registered metric; raise ConfigError listing the choices when unknown."""
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}")
    return METRICS[name]


def metrics_for(output: str) -> list[Metric]:
    """Return the registered metrics defined for an output kind (``classes``, ``multilabel``, ``dense``)."""
    return [m for m in METRICS.values() if output in m.outputs]


def get_loss(name: str) -> LossFn:
    """Return a registered loss; raise ConfigError listing the choices when unknown."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name]
