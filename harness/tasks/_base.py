"""The data contract of a task: splits as tensors, modality, output kind, loss and metric."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from ._targets import get_output_kind

__all__ = ["LoadContext", "RawSplits", "TaskData", "TaskSpec", "prepare"]

_CHUNK = 4096
"""Samples per chunk when computing statistics and normalising (bounds float64 temporaries)."""


@dataclass(frozen=True)
class RawSplits:
    """Arrays as a loader reads them, before subsetting, validation split and normalisation.

    x_train : (N, C, L) or (N, C, H, W), any real dtype.  y_train : (N,) integer
    classes (any values) for ``classes`` tasks, (N, K) 0/1 for ``multilabel``,
    (N, L') or (N, H', W') real maps for ``dense``.  x_val / y_val : optional
    official validation split.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class LoadContext:
    """What a loader may use: the data directory and the pickle opt-in."""

    data_dir: str | None
    allow_pickle: bool


def _always(ctx: LoadContext) -> bool:
    return True


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: how to load it and what it is."""

    name: str
    modality: str
    """``1d`` (inputs (N, C, L)) or ``2d`` (inputs (N, C, H, W))."""
    load: Callable[[str, LoadContext], RawSplits]
    """Reads the raw splits; receives the full task name and a context (data dir, pickle opt-in)."""
    metric: str = "accuracy"
    loss: str = "cross_entropy"
    output: str = "classes"
    """``classes``, ``multilabel`` or ``dense`` (see ``harness.tasks._targets.OUTPUT_KINDS``); selects the head."""
    default_tokens: int = 8
    """Token budget of the embedder when the config leaves ``embedder.tokens`` unset."""
    description: str = ""
    requires: str = ""
    """What must be installed or present; shown by ``orca-ablate tasks`` when missing."""
    available: Callable[[LoadContext], bool] = _always
    """Whether the task can load here, given the data directory (never loads the data)."""
    check: Callable[[str, LoadContext], None] | None = None
    """For a family: raise DataError when ``name``'s data are missing or malformed, reading at most file
    headers (``ucr:NAME`` resolves, ``npz:PATH`` has the right arrays); None: ``available`` decides."""


@dataclass(frozen=True)
class TaskData:
    """Normalised splits of one task, ready for training.

    x_* : (N, C, L) or (N, C, H, W) float32 tensors, normalised per channel with
    training statistics.  y_* by output kind: ``classes`` (N,) int64 indices
    0..num_classes-1; ``multilabel`` (N, K) float32 in {0, 1}, K = num_classes;
    ``dense`` (N, L') or (N, H', W') float32, normalised per position with
    training statistics (``decode`` maps them back; num_classes = 1).
    otdd_labels : (N_train,) int64 labels of the training split for OTDD — the
    classes, or seeded k-means clusters of the targets.
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
    otdd_labels: torch.Tensor
    target_mean: torch.Tensor | None = None
    """(*S') mean of the dense training targets; None for other outputs."""
    target_std: torch.Tensor | None = None
    """(*S') standard deviation of the dense training targets; None for other outputs."""

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Return the shape of one input, ``(C, L)`` or ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Return the shape of one target: ``()``, ``(K,)``, ``(L',)`` or ``(H', W')``."""
        return tuple(self.y_train.shape[1:])

    def decode(self, t: torch.Tensor) -> torch.Tensor:
        """Return outputs or targets (N, *S') in the task's own units (identity unless dense)."""
        if self.target_mean is None or self.target_std is None:
            return t
        return t * self.target_std.to(t.device) + self.target_mean.to(t.device)


def _chunks(n: int) -> Iterator[slice]:
    for i in range(0, n, _CHUNK):
        yield slice(i, min(n, i + _CHUNK))


def _check_finite(name: str, split: str, x: np.ndarray) -> None:
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        return
    bad = sum(int((~np.isfinite(x[s])).sum()) for s in _chunks(len(x)))
    if bad:
        raise DataError(f"task {name!r}: the {split} split holds {bad} NaN/inf values; "
                        "clean or impute the data first (variable-length series need padding)")


def _channel_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return per-channel mean and population std (1, C, 1[, 1]) in float64, merged over sample chunks."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    count, mean, m2 = 0, 0.0, 0.0
    for s in _chunks(len(x)):
        c = np.asarray(x[s], dtype=np.float64)
        n_c = c.size // c.shape[1]
        mean_c = c.mean(axis=axes, keepdims=True)
        m2_c = ((c - mean_c) ** 2).sum(axis=axes, keepdims=True)
        delta = mean_c - mean
        total = count + n_c
        mean = mean + delta * (n_c / total)
        m2 = m2 + m2_c + delta ** 2 * (count * n_c / total)
        count = total
    std = np.sqrt(np.asarray(m2) / count)
    std[std < 1e-8] = 1.0
    return np.asarray(mean), std


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    out = np.empty(x.shape, dtype=np.float32)
    for s in _chunks(len(x)):
        out[s] = (np.asarray(x[s], dtype=np.float64) - mean) / std
    return torch.from_numpy(out)


def _check_class_coverage(name: str, train: np.ndarray, others: list[np.ndarray]) -> None:
    """Raise DataError for fewer than two training classes; warn about classes that only other splits have."""
    seen = set(np.unique(train).tolist())
    if len(seen) < 2:
        raise DataError(f"task {name!r}: the training labels hold {len(seen)} class ({sorted(seen)}); a classifier "
                        "needs at least two")
    unseen = sorted({v for y in others for v in np.unique(y).tolist()} - seen)
    if unseen:
        warnings.warn(f"task {name!r}: classes {unseen[:10]} appear in validation/test but never in training; "
                      "those samples cannot be predicted right", UserWarning, stacklevel=3)


def prepare(spec: TaskSpec, name: str, raw: RawSplits, *, seed: int, val_fraction: float,
            max_train_samples: int | None, max_test_samples: int | None) -> TaskData:
    """Return normalised, split tensors from raw arrays.

    Subsets the training split with ``seed``, holds out ``val_fraction`` of it for
    validation (seeded; an official validation split is used when present, and the
    training split is then shuffled with ``seed``), keeps a seed-independent subset
    of the test split, prepares the targets by output kind (classes remapped to
    0..k-1; dense maps standardised per position) and normalises the inputs of
    every split per channel with training-split statistics.
    """
    kind = get_output_kind(spec.output)
    ndim = 3 if spec.modality == "1d" else 4
    splits = {"train": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}
    if raw.x_val is not None and raw.y_val is not None:
        splits["validation"] = (raw.x_val, raw.y_val)
    for split, (x, y) in splits.items():
        if x.ndim != ndim:
            shape = "(N, C, L)" if ndim == 3 else "(N, C, H, W)"
            raise DataError(f"task {name!r}: {split} inputs have shape {x.shape}; expected {shape}")
        kind.check(name, split, np.asarray(y), len(x))
        if len(x) == 0:
            raise DataError(f"task {name!r}: the {split} split is empty")
        if np.asarray(x).dtype.kind not in "fiu":
            raise DataError(f"task {name!r}: {split} inputs are {np.asarray(x).dtype}; give real numbers")
        _check_finite(name, split, x)
        if np.asarray(x).shape[1:] != np.asarray(raw.x_train).shape[1:]:
            raise DataError(f"task {name!r}: {split} samples have shape {np.asarray(x).shape[1:]}, training samples "
                            f"{np.asarray(raw.x_train).shape[1:]}; every split needs the same channels and length")
    every_y = [np.asarray(y) for _, y in splits.values()]
    if spec.output == "classes":
        _check_class_coverage(name, np.asarray(raw.y_train), [np.asarray(y) for s, (_, y) in splits.items()
                                                              if s != "train"])

    rng = np.random.default_rng(seed)
    x_tr, y_tr = raw.x_train, raw.y_train
    if max_train_samples is not None and max_train_samples < len(x_tr):
        idx = rng.permutation(len(x_tr))[:max_train_samples]
        x_tr, y_tr = x_tr[idx], y_tr[idx]
    if "validation" in splits:
        x_va, y_va = splits["validation"]
        # Official training splits are often sorted (by class, subject, record): shuffle them with the seed.
        perm = rng.permutation(len(x_tr))
        x_tr, y_tr = x_tr[perm], y_tr[perm]
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

    targets = kind.prepare({"train": np.asarray(y_tr), "validation": np.asarray(y_va), "test": np.asarray(y_te)},
                           every_y, seed)
    mean, std = _channel_moments(x_tr)
    return TaskData(
        name=name, modality=spec.modality,
        x_train=_normalise(x_tr, mean, std), y_train=targets.train,
        x_val=_normalise(x_va, mean, std), y_val=targets.val,
        x_test=_normalise(x_te, mean, std), y_test=targets.test,
        num_classes=targets.num_classes, metric=spec.metric, loss=spec.loss, output=spec.output,
        default_tokens=spec.default_tokens, otdd_labels=targets.otdd_labels,
        target_mean=targets.mean, target_std=targets.std,
    )
