"""The data contract of a task: splits as tensors, modality, loss and metric."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError

__all__ = ["RawSplits", "TaskData", "TaskSpec", "prepare"]


@dataclass(frozen=True)
class RawSplits:
    """Arrays as a loader reads them, before subsetting, validation split and normalisation.

    x_train : (N, C, L) or (N, C, H, W) float;  y_train : (N,) int (any integer values)
    x_val / y_val : optional official validation split.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: how to load it and what it is."""

    name: str
    modality: str
    """``1d`` (inputs (N, C, L)) or ``2d`` (inputs (N, C, H, W))."""
    load: Callable[[str, "LoadContext"], RawSplits]
    """Reads the raw splits; receives the full task name and a context (data dir, pickle opt-in)."""
    metric: str = "accuracy"
    loss: str = "cross_entropy"
    output: str = "classes"
    default_tokens: int = 8
    """Token budget of the embedder when the config leaves ``embedder.tokens`` unset."""
    description: str = ""
    requires: str = ""
    """What must be installed or present; shown by ``orca-ablate tasks`` when missing."""
    available: Callable[[], bool] = lambda: True


@dataclass(frozen=True)
class LoadContext:
    """What a loader may use: the data directory and the pickle opt-in."""

    data_dir: str | None
    allow_pickle: bool


@dataclass(frozen=True)
class TaskData:
    """Normalised splits of one task, ready for training.

    x_* : (N, C, L) or (N, C, H, W) float32 tensors, normalised per channel with
    training statistics;  y_* : (N,) int64 class indices 0..num_classes-1.
    """

    name: str
    modality: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    metric: str
    loss: str
    output: str
    default_tokens: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Return the shape of one input, ``(C, L)`` or ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])


def _check_finite(name: str, split: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        bad = int((~np.isfinite(x)).sum())
        raise DataError(f"task {name!r}: the {split} split holds {bad} NaN/inf values; "
                        "clean or impute the data first (variable-length series need padding)")


def prepare(spec: TaskSpec, name: str, raw: RawSplits, *, seed: int, val_fraction: float,
            max_train_samples: int | None, max_test_samples: int | None) -> TaskData:
    """Return normalised, split tensors from raw arrays.

    Subsets the training split with ``seed``, holds out ``val_fraction`` of it for
    validation (seeded; an official validation split is used when present), keeps
    a seed-independent subset of the test split, remaps labels to 0..k-1 and
    normalises every split per channel with training-split statistics.
    """
    ndim = 3 if spec.modality == "1d" else 4
    splits = {"train": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}
    if raw.x_val is not None and raw.y_val is not None:
        splits["validation"] = (raw.x_val, raw.y_val)
    for split, (x, y) in splits.items():
        if x.ndim != ndim:
            shape = "(N, C, L)" if ndim == 3 else "(N, C, H, W)"
            raise DataError(f"task {name!r}: {split} inputs have shape {x.shape}; expected {shape}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"task {name!r}: {split} labels have shape {y.shape}; expected ({len(x)},)")
        if len(x) == 0:
            raise DataError(f"task {name!r}: the {split} split is empty")
        _check_finite(name, split, np.asarray(x, dtype=np.float64))
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise DataError(f"task {name!r}: {split} labels must be integer classes")
    classes = np.unique(np.concatenate([y for _, y in splits.values()]).astype(np.int64))
    remap = {int(c): i for i, c in enumerate(classes)}

    rng = np.random.default_rng(seed)
    x_tr, y_tr = raw.x_train, raw.y_train
    if max_train_samples is not None and max_train_samples < len(x_tr):
        idx = rng.permutation(len(x_tr))[:max_train_samples]
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    if "validation" in splits:
        x_va, y_va = splits["validation"]
    else:
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        n_val = max(1, int(round(val_fraction * len(x_tr))))
        if n_val >= len(x_tr):
            raise DataError(f"task {name!r}: {len(x_tr)} training samples are too few for a validation split")
        perm = rng.permutation(len(x_tr))
        x_va, y_va = x_tr[perm[:n_val]], y_tr[perm[:n_val]]
        x_tr, y_tr = x_tr[perm[n_val:]], y_tr[perm[n_val:]]
    x_te, y_te = raw.x_test, raw.y_test
    if max_test_samples is not None and max_test_samples < len(x_te):
        idx = np.random.default_rng(0).permutation(len(x_te))[:max_test_samples]
        x_te, y_te = x_te[idx], y_te[idx]

    x_tr64 = np.asarray(x_tr, dtype=np.float64)
    axes = tuple(i for i in range(x_tr64.ndim) if i != 1)
    mean = x_tr64.mean(axis=axes, keepdims=True)
    std = x_tr64.std(axis=axes, keepdims=True)
    std[std < 1e-8] = 1.0

    def tx(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32))

    def ty(y: np.ndarray) -> torch.Tensor:
        return torch.tensor([remap[int(v)] for v in np.asarray(y).astype(np.int64)], dtype=torch.int64)

    return TaskData(
        name=name, modality=spec.modality,
        x_train=tx(x_tr), y_train=ty(y_tr), x_val=tx(x_va), y_val=ty(y_va), x_test=tx(x_te), y_test=ty(y_te),
        num_classes=len(classes), metric=spec.metric, loss=spec.loss, output=spec.output,
        default_tokens=spec.default_tokens,
    )
