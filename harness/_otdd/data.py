"""Validated, class-sorted labelled datasets for the OTDD computations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]


@dataclass(frozen=True)
class LabelledSet:
    """A labelled dataset with rows sorted by class and features in float64.

    Attributes
    ----------
    x : (n, d) float64 tensor
        Features, rows grouped by class; may carry autograd history back to the
        caller's tensor (any float dtype, any device).
    codes : (n,) int64 tensor
        Class codes 0..k-1 on ``x.device``, non-decreasing.
    offsets : (k + 1,) int64 array
        Class ``c`` occupies rows ``offsets[c]:offsets[c + 1]``.
    classes : (k,) array
        The caller's label value of each class code, in sorted order.
    """

    x: torch.Tensor
    codes: torch.Tensor
    offsets: np.ndarray
    classes: np.ndarray

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.x.shape[0])

    @property
    def d(self) -> int:
        """Feature width."""
        return int(self.x.shape[1])

    @property
    def k(self) -> int:
        """Number of classes."""
        return int(self.classes.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """Samples per class, a (k,) int64 array."""
        return np.diff(self.offsets)

    def block(self, c: int) -> torch.Tensor:
        """Return the (n_c, d) float64 features of class ``c``."""
        return self.x[int(self.offsets[c]) : int(self.offsets[c + 1])]

    def detach(self) -> LabelledSet:
        """Return the same set with features cut from the autograd graph."""
        return LabelledSet(self.x.detach(), self.codes, self.offsets, self.classes)

    def to(self, device: torch.device) -> LabelledSet:
        """Return the set with its tensors on ``device``."""
        if self.x.device == device:
            return self
        return LabelledSet(self.x.to(device), self.codes.to(device), self.offsets, self.classes)

    def single_class(self, c: int) -> LabelledSet:
        """Return class ``c`` alone as a one-class set (code 0)."""
        x = self.block(c)
        return LabelledSet(
            x,
            torch.zeros(x.shape[0], dtype=torch.int64, device=x.device),
            np.array([0, x.shape[0]], dtype=np.int64),
            self.classes[c : c + 1],
        )


def resolve_device(*arrays: object) -> torch.device:
    """Return the device of the torch tensors among ``arrays`` (CPU if none).

    Raises ``ValueError`` when tensors live on different devices.
    """
    devices = {a.device for a in arrays if isinstance(a, torch.Tensor)}
    if len(devices) > 1:
        raise ValueError(
            f"features live on different devices {sorted(str(d) for d in devices)}; "
            "move them to one device first"
        )
    return devices.pop() if devices else torch.device("cpu")


def as_features(x: object, name: str, device: torch.device) -> torch.Tensor:
    """Return ``x`` as an (n, d) floating tensor on ``device`` after validating it.

    Torch tensors are used as they are (autograd history kept); numpy arrays are
    converted without copying where possible.
    """
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name} must hold floating-point features, got dtype {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    elif isinstance(x, torch.Tensor):
        if not torch.is_floating_point(x):
            raise ValueError(f"{name} must hold floating-point features, got dtype {x.dtype}")
        t = x
    else:
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}; need at least one sample and one feature")
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return t


def as_labels(y: object, name: str, n: int) -> np.ndarray:
    """Return ``y`` as an (n,) int64 numpy array after validating it."""
    if isinstance(y, torch.Tensor):
        arr = y.detach().cpu().numpy()
    elif isinstance(y, np.ndarray):
        arr = y
    else:
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(y).__name__}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n,), got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the features have {n} rows")
    return arr.astype(np.int64, copy=False)


def check_max_samples(max_samples: int | None) -> None:
    """Raise ``ValueError`` unless ``max_samples`` is None or a positive int."""
    if max_samples is None:
        return
    if isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 1:
        raise ValueError(f"max_samples must be None or a positive int, got {max_samples!r}")


def labelled_set(
    x: torch.Tensor,
    labels: np.ndarray,
    *,
    name: str,
    max_samples: int | None,
    rng: np.random.Generator,
    min_class_size: int,
) -> LabelledSet:
    """Return the class-sorted float64 :class:`LabelledSet` of validated ``x``, ``labels``.

    x : (n, d) floating tensor, labels : (n,) int64. With ``max_samples`` below n,
    a uniform random subset of that size (drawn from ``rng``, without
    replacement) is kept. Labels are remapped to 0..k-1 in sorted order.
    """
    n = x.shape[0]
    index = np.arange(n)
    if max_samples is not None and max_samples < n:
        index = np.sort(rng.choice(n, size=int(max_samples), replace=False))
        labels = labels[index]
    classes, codes = np.unique(labels, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    rows = index[order]
    if not np.array_equal(rows, np.arange(n)):
        x = x[torch.as_tensor(rows, device=x.device)]
    counts = np.bincount(codes, minlength=classes.shape[0])
    small = np.flatnonzero(counts < min_class_size)
    if small.size:
        c = int(small[0])
        raise ValueError(
            f"{name}: class {classes[c].item()!r} has {counts[c]} sample(s); this inner method "
            f"needs at least {min_class_size} per class (a covariance needs 2)"
        )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    codes_sorted = torch.as_tensor(np.repeat(np.arange(classes.shape[0]), counts), device=x.device)
    return LabelledSet(x.to(torch.float64), codes_sorted, offsets, classes)
