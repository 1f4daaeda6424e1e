"""The outcome of one trial: scores, OTDD before/after alignment, timings, provenance."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TrialResult"]


@dataclass(frozen=True)
class TrialResult:
    """Everything one ORCA trial reports; scores are in the metric's unit (``direction`` says which way is better).

    Accuracy, macro-F1, AUROC and mAP are fractions in [0, 1], higher is better;
    relative L2 (dense tasks) is ≥ 0, lower is better.
    """

    test_score: float
    """The task metric on the whole test split, for the model selected on validation."""
    val_score: float
    """The best validation score in the metric's direction (the selection criterion)."""
    metric: str
    """Name of the task metric, e.g. ``accuracy``."""
    direction: str
    """``maximize`` or ``minimize``: which way the metric is better."""
    modality: str
    """``1d`` or ``2d``."""
    otdd_before: float
    """OTDD (exact inner, exact outer) between embedded training data and proxy before alignment."""
    otdd_after: float
    """The same OTDD after alignment (equals ``otdd_before`` when there are 0 alignment epochs)."""
    otdd_curve: list[float]
    """OTDD before alignment and after each alignment epoch: ``epochs + 1`` values."""
    val_curve: list[float]
    """Validation score after each fine-tuning epoch."""
    best_epoch: int
    """Fine-tuning epoch (1-based) whose weights were selected on validation."""
    seconds: dict[str, float]
    """Wall-clock seconds per stage: ``load``, ``align``, ``finetune``, ``evaluate``, ``total``."""
    trainable_params: int
    """Parameters updated during fine-tuning."""
    peak_mem_mb: float
    """Peak memory of the trial: max resident set (CPU) or max allocated CUDA memory, MiB."""
    device: str
    """Device the trial ran on, e.g. ``cpu``."""
    config: dict[str, Any]
    """The resolved TrialConfig as a nested dict (defaults filled in)."""
    versions: dict[str, str]
    """Versions of python, orca-ablate, torch, transformers, POT and numpy, and under ``git_commit``
    (``contract.GIT_COMMIT``) the commit of the checkout the trial ran from, when it ran from one."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra facts: resolved patch size and token count, proxy description, sample counts, the task's
    ``output`` kind and ``target_shape``, ``test_metrics`` (every metric defined for the output kind, on
    the test split) and ``otdd_label_classes`` (distinct OTDD labels in the alignment sample)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Return the result as one line of JSON."""
        return json.dumps(self.to_dict(), sort_keys=True)
