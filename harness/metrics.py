"""Task metrics on whole splits, and losses: registries keyed by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = ["LOSSES", "METRICS", "Metric", "accuracy", "get_loss", "get_metric", "macro_f1"]


@dataclass(frozen=True)
class Metric:
    """A metric: ``fn(outputs (N, K), targets (N,)) -> float`` and which way is better."""

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor], float]
    direction: str  # "maximize" | "minimize"

    def better(self, a: float, b: float) -> bool:
        """Return whether score ``a`` is strictly better than ``b``."""
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


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", accuracy, "maximize"),
    "macro_f1": Metric("macro_f1", macro_f1, "maximize"),
}

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
}


def get_metric(name: str) -> Metric:
    """Return a registered metric; raise ConfigError listing the choices when unknown."""
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; expected one of {sorted(METRICS)}")
    return METRICS[name]


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Return a registered loss; raise ConfigError listing the choices when unknown."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name]
