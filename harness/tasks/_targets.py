"""Output kinds of a task (``classes``, ``multilabel``, ``dense``): how targets are checked and prepared.

A registry maps each kind to a checker (shape and values of one split's raw
targets) and a preparer that turns the train / validation / test targets into
tensors, counts the outputs and labels the training split for OTDD: the
classes themselves, or — for multi-label and dense targets, as ORCA does — a
seeded k-means clustering of the (flattened) target vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, DataError

__all__ = ["OTDD_CLUSTERS", "OUTPUT_KINDS", "OutputKind", "PreparedTargets", "get_output_kind", "kmeans_labels"]

OTDD_CLUSTERS = 10
"""k of the k-means that labels multi-label and dense targets for OTDD (ORCA's ``infer_labels``)."""


@dataclass(frozen=True)
class PreparedTargets:
    """Targets of the three splits as tensors, the output count, OTDD labels and the dense decoding.

    train / val / test : (N,) int64 classes, (N, K) float32 in {0, 1}, or (N, *S) float32
    normalised per output position;  otdd_labels : (N_train,) int64;  mean / std : (*S,)
    float32 for dense targets (``y = normalised * std + mean``), else None.
    """

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    num_classes: int
    otdd_labels: torch.Tensor
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


Checker = Callable[[str, str, np.ndarray, int], None]
"""(task name, split name, raw targets, number of inputs) -> None; raises DataError."""
Preparer = Callable[[dict[str, np.ndarray], list[np.ndarray], int], PreparedTargets]
"""(targets of train/validation/test after subsetting, every raw target array, seed) -> PreparedTargets."""


@dataclass(frozen=True)
class OutputKind:
    """A registered output kind: its target checker and preparer."""

    name: str
    check: Checker
    prepare: Preparer
    description: str


def kmeans_labels(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Return (N,) int64 cluster labels of the flattened targets ``y`` (N, ...) by seeded k-means.

    Uses at most as many clusters as there are distinct target vectors; above
    10,000 samples, mini-batch k-means (batches of 10,000), as ORCA does.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    flat = np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)
    distinct = len(np.unique(flat, axis=0))
    k = max(1, min(k, distinct))
    if k == 1:
        return np.zeros(len(flat), dtype=np.int64)
    if len(flat) > 10_000:
        model = MiniBatchKMeans(n_clusters=k, batch_size=10_000, n_init=3, random_state=seed)
    else:
        model = KMeans(n_clusters=k, n_init="auto", random_state=seed)
    return model.fit_predict(flat).astype(np.int64)


def _check_len(name: str, split: str, y: np.ndarray, n: int, expected: str) -> None:
    if y.ndim == 0 or len(y) != n:
        raise DataError(f"task {name!r}: {split} targets have shape {y.shape}; expected {expected} with N={n}")


def _check_classes(name: str, split: str, y: np.ndarray, n: int) -> None:
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"task {name!r}: {split} labels have shape {y.shape}; expected ({n},)")
    if y.dtype.kind not in "iubf" or (y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0))):
        raise DataError(f"task {name!r}: {split} labels must be integer classes, got {y.dtype} "
                        "(map string labels to 0..K-1 first)")


def _check_multilabel(name: str, split: str, y: np.ndarray, n: int) -> None:
    _check_len(name, split, y, n, "(N, K) 0/1 labels")
    if y.ndim != 2:
        raise DataError(f"task {name!r}: {split} targets have shape {y.shape}; expected (N, K) 0/1 labels")
    if not np.all((y == 0) | (y == 1)):
        raise DataError(f"task {name!r}: {split} multi-label targets must be 0 or 1")


def _check_dense(name: str, split: str, y: np.ndarray, n: int) -> None:
    _check_len(name, split, y, n, "(N, L) or (N, H, W) maps")
    if y.ndim not in (2, 3):
        raise DataError(f"task {name!r}: {split} targets have shape {y.shape}; expected (N, L) or (N, H, W) maps")
    if not np.all(np.isfinite(y)):
        raise DataError(f"task {name!r}: the {split} targets hold NaN/inf values")


def _prepare_classes(splits: dict[str, np.ndarray], every: list[np.ndarray], seed: int) -> PreparedTargets:
    # Classes come from every raw split, so subsetting never changes the head's width.
    classes = np.unique(np.concatenate([np.asarray(y).astype(np.int64) for y in every]))
    remap = {int(c): i for i, c in enumerate(classes)}

    def ty(y: np.ndarray) -> torch.Tensor:
        return torch.tensor([remap[int(v)] for v in np.asarray(y).astype(np.int64)], dtype=torch.int64)

    train = ty(splits["train"])
    return PreparedTargets(train, ty(splits["validation"]), ty(splits["test"]), len(classes), train.clone())


def _prepare_multilabel(splits: dict[str, np.ndarray], every: list[np.ndarray], seed: int) -> PreparedTargets:
    def ty(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.float32).copy())

    y_tr = splits["train"]
    labels = torch.from_numpy(kmeans_labels(np.asarray(y_tr, dtype=np.float32), OTDD_CLUSTERS, seed))
    return PreparedTargets(ty(y_tr), ty(splits["validation"]), ty(splits["test"]), int(y_tr.shape[1]), labels)


def _prepare_dense(splits: dict[str, np.ndarray], every: list[np.ndarray], seed: int) -> PreparedTargets:
    # Pointwise standardisation with training statistics, as ORCA's UnitGaussianNormalizer (std floored).
    y_tr = np.asarray(splits["train"], dtype=np.float64)
    mean = y_tr.mean(axis=0)
    std = y_tr.std(axis=0)
    std[std < 1e-8] = 1.0

    def ty(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((np.asarray(y, dtype=np.float64) - mean) / std).astype(np.float32))

    train = ty(splits["train"])
    labels = torch.from_numpy(kmeans_labels(train.numpy(), OTDD_CLUSTERS, seed))
    return PreparedTargets(train, ty(splits["validation"]), ty(splits["test"]), 1, labels,
                           torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32)))


OUTPUT_KINDS: dict[str, OutputKind] = {
    "classes": OutputKind("classes", _check_classes, _prepare_classes,
                          "one class per input; integer labels remapped to 0..k-1"),
    "multilabel": OutputKind("multilabel", _check_multilabel, _prepare_multilabel,
                             "K independent 0/1 labels per input"),
    "dense": OutputKind("dense", _check_dense, _prepare_dense,
                        "one real-valued map per input, (L) or (H, W); normalised pointwise for training"),
}


def get_output_kind(name: str) -> OutputKind:
    """Return a registered output kind; raise ConfigError listing the choices when unknown."""
    if name not in OUTPUT_KINDS:
        raise ConfigError(f"unknown task output {name!r}; expected one of {sorted(OUTPUT_KINDS)}")
    return OUTPUT_KINDS[name]
