"""NAS-Bench-360 tasks read from a user's data directory in their official file formats.

Files live in the data directory (``data.data_dir``, ``--data-dir`` or
``$ORCA_ABLATE_DATA``) under the names NAS-Bench-360 and ORCA download them
with. Pickle-based formats (Satellite's ``.npy`` dicts, ECG's ``.pkl``,
Spherical's gzip pickle) load only with ``data.allow_pickle: true``
(``--allow-pickle``): unpickling a file can run code. Each loader says in its
docstring which of ORCA's preprocessing steps (``src/data_loaders.py``) it keeps
and where it deviates; inputs are always normalised afterwards per channel with
training statistics by :func:`harness.tasks._base.prepare`.
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._base import LoadContext, RawSplits
from ._loaders import data_dir

__all__ = ["DARCY_SUBSAMPLE", "ECG_STRIDES", "ECG_WINDOW", "NASBENCH_FILES", "files_present", "load_darcy_flow",
           "load_deepsea", "load_ecg", "load_ninapro", "load_satellite", "load_spherical", "slide_windows"]

NASBENCH_FILES: dict[str, tuple[str, ...]] = {
    "satellite": ("satellite_train.npy", "satellite_test.npy"),
    "deepsea": ("deepsea_filtered.npz",),
    "ecg": ("challenge2017.pkl",),
    "spherical": ("s2_cifar100.gz",),
    "ninapro": tuple(f"ninaPro/{kind}_{split}.npy" for split in ("train", "val", "test")
                     for kind in ("ninapro", "label")),
    "darcy-flow": ("piececonst_r421_N1024_smooth1.mat", "piececonst_r421_N1024_smooth2.mat"),
}
"""Task -> files it reads, relative to the data directory."""

_PICKLE_HINT = ("it is a pickle, and unpickling can run code: if you trust the file, opt in with --allow-pickle "
                "(or --set data.allow_pickle=true, or data.allow_pickle: true in a config file)")


def _path(ctx: LoadContext, task: str, rel: str) -> Path:
    """Return ``<data_dir>/rel``; raise DataError naming the file and the data-dir settings when absent."""
    root = data_dir(ctx)
    if root is None:
        raise DataError(f"task {task!r}: needs {', '.join(NASBENCH_FILES[task])} in a data directory; "
                        "set --data-dir, data.data_dir or $ORCA_ABLATE_DATA")
    path = root / rel
    if not path.is_file():
        raise DataError(f"task {task!r}: {path} not found; expected NAS-Bench-360's "
                        f"{', '.join(NASBENCH_FILES[task])} in {root}")
    return path


def files_present(task: str) -> Callable[[LoadContext], bool]:
    """Return ``available(ctx)``: whether every file of ``task`` exists in the data directory."""
    def available(ctx: LoadContext) -> bool:
        root = data_dir(ctx)
        return root is not None and all((root / rel).is_file() for rel in NASBENCH_FILES[task])
    return available


def _open_binary(path: Path) -> Any:
    return open(path, "rb")


def _unpickle(ctx: LoadContext, task: str, path: Path, opener: Callable[[Path], Any] = _open_binary) -> Any:
    """Return the object pickled in ``path`` (latin-1 for Python 2 pickles) once the opt-in is given."""
    if not ctx.allow_pickle:
        raise DataError(f"task {task!r}: refusing to load {path}: {_PICKLE_HINT}")
    try:
        with opener(path) as fh:
            return pickle.load(fh, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError, ImportError) as exc:
        raise DataError(f"task {task!r}: cannot unpickle {path} ({type(exc).__name__}: {exc})") from None


def _npy(ctx: LoadContext, task: str, path: Path) -> np.ndarray:
    """Return a plain ``.npy`` array; object arrays (pickles) only with the opt-in."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise DataError(f"task {task!r}: cannot read {path} as .npy ({exc})") from None
    except OSError as exc:
        raise DataError(f"task {task!r}: cannot read {path} as .npy ({exc})") from None
    if not ctx.allow_pickle:
        raise DataError(f"task {task!r}: {path} holds Python objects, not a plain array; {_PICKLE_HINT}")
    try:
        return np.load(path, allow_pickle=True, encoding="bytes")
    except (OSError, ValueError, pickle.UnpicklingError) as exc:
        raise DataError(f"task {task!r}: cannot read {path} ({exc})") from None


def _field(task: str, path: Path, obj: Any, key: str, expected: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"task {task!r}: {path} should hold a dict with {key!r} ({expected}); found {found}")
    return obj[key]


def load_satellite(name: str, ctx: LoadContext) -> RawSplits:
    """Return Satellite: x (N, 1, 46) satellite time series, y (N,) in 0..23; pickle opt-in needed.

    Format: ``satellite_{train,test}.npy`` each hold a pickled dict ``{'data': (N, 46),
    'label': (N,) in 1..24}`` saved with ``np.save`` (a 0-d object array).
    ORCA: labels shifted by -1 (kept), no input scaling. Deviations: inputs are
    normalised with training statistics (NAS-Bench-360 z-scores each series
    instead); validation is a seeded ``data.val_fraction`` split of the
    training file (ORCA's valid split overlaps its own training part).
    """
    parts = []
    for rel in NASBENCH_FILES["satellite"]:
        path = _path(ctx, name, rel)
        arr = _npy(ctx, name, path)
        obj = arr[()] if arr.dtype == object and arr.shape == () else arr
        x = np.asarray(_field(name, path, obj, "data", "(N, L) series"), dtype=np.float32)
        y = np.asarray(_field(name, path, obj, "label", "(N,) labels 1..24"))
        if x.ndim != 2 or y.shape != (len(x),):
            raise DataError(f"task {name!r}: {path} has data {x.shape} and label {y.shape}; expected (N, L) and (N,)")
        if len(y) and (y.min() < 1 or y.max() > 24):
            raise DataError(f"task {name!r}: {path} labels span {y.min()}..{y.max()}; expected 1..24")
        parts.append((x[:, None, :], y.astype(np.int64) - 1))
    (x_tr, y_tr), (x_te, y_te) = parts
    return RawSplits(x_tr, y_tr, x_te, y_te)


def load_deepsea(name: str, ctx: LoadContext) -> RawSplits:
    """Return DeepSEA: x (N, 4, 1000) one-hot DNA, y (N, 36) 0/1 chromatin labels, official validation split.

    Format: ``deepsea_filtered.npz`` with x_{train,val,test} (N, 1000, 4) and
    y_{train,val,test} (N, 36); read without pickle. ORCA: one-hot transposed to
    (N, 4, 1000) (kept), the official validation split when ``valid_split`` is
    on (kept; otherwise ORCA merges it into training and validates on test).
    Deviation: ORCA's loss weights positives by 4 (``pos_weight``); ours is plain
    BCE-with-logits.
    """
    path = _path(ctx, name, "deepsea_filtered.npz")
    keys = [f"{v}_{s}" for s in ("train", "val", "test") for v in ("x", "y")]
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"task {name!r}: {path} lacks {missing}; expected {keys}, found {sorted(f.files)}")
            arrays = {k: f[k] for k in keys}
    except (OSError, ValueError) as exc:
        raise DataError(f"task {name!r}: cannot read {path} as an .npz without pickle ({exc})") from None
    out = {}
    for s in ("train", "val", "test"):
        x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
        if x.ndim != 3 or x.shape[2] != 4 or y.ndim != 2 or len(y) != len(x):
            raise DataError(f"task {name!r}: {path} x_{s} {x.shape}, y_{s} {y.shape}; "
                            "expected (N, L, 4) one-hot and (N, K) labels")
        out[s] = (x.transpose(0, 2, 1), y)
    return RawSplits(*out["train"], *out["test"], *out["val"])


ECG_LABELS = {"N": 0, "A": 1, "O": 2, "~": 3}
"""PhysioNet/CinC 2017 classes: normal, atrial fibrillation, other rhythm, noisy."""
ECG_WINDOW = 1000
ECG_STRIDES = {0: 500, 1: 500 // 6, 2: 500 // 2, 3: 500 // 20}
"""Training-window stride per class (ORCA's ``slide_and_cut``: rarer classes are cut more densely)."""


def slide_windows(records: list[np.ndarray], labels: np.ndarray, window: int,
                  stride: Callable[[int], int]) -> tuple[np.ndarray, np.ndarray]:
    """Return windows (M, window) float32 cut from each record at ``stride(label)``, and their labels (M,).

    Windows start at 0, s, 2s, … while they fit (ORCA stops one step earlier); a
    record shorter than ``window`` yields none.
    """
    xs, ys = [], []
    for rec, lab in zip(records, labels):
        if len(rec) < window:
            continue
        view = np.lib.stride_tricks.sliding_window_view(rec, window)[::stride(int(lab))]
        xs.append(view.astype(np.float32))
        ys.append(np.full(len(view), lab, dtype=np.int64))
    if not xs:
        return np.zeros((0, window), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs), np.concatenate(ys)


def load_ecg(name: str, ctx: LoadContext) -> RawSplits:
    """Return ECG: x (M, 1, 1000) windows of single-lead ECG records, y (M,) in 0..3; pickle opt-in needed.

    Format: ``challenge2017.pkl`` pickles ``{'data': [record (L_i,) ...], 'label':
    ['N'|'A'|'O'|'~', ...]}`` (records of varying length). As ORCA /
    NAS-Bench-360: each record is z-scored on its own, records (not windows) are
    split 80/10/10 into train/validation/test with scikit-learn's
    ``train_test_split(random_state=0)`` twice, and training records are cut into
    windows of 1000 with class-dependent strides (500, 83, 250, 25).
    Deviations: validation and test windows use one stride of 500 for every class
    (ORCA oversamples rare classes in the test set too, which re-weights the
    metric); the split is fixed, so ``data.val_fraction`` does not apply.
    """
    from sklearn.model_selection import train_test_split

    path = _path(ctx, name, "challenge2017.pkl")
    res = _unpickle(ctx, name, path)
    data, raw_labels = _field(name, path, res, "data", "records"), _field(name, path, res, "label", "'N'/'A'/'O'/'~'")
    if len(data) != len(raw_labels) or len(data) < 10:
        raise DataError(f"task {name!r}: {path} has {len(data)} records and {len(raw_labels)} labels; "
                        "expected as many of each, at least 10")
    labels = []
    for v in raw_labels:
        key = v.decode() if isinstance(v, bytes) else str(v)
        if key not in ECG_LABELS:
            raise DataError(f"task {name!r}: {path} has label {key!r}; expected one of {sorted(ECG_LABELS)}")
        labels.append(ECG_LABELS[key])
    records = []
    for rec in data:
        r = np.asarray(rec, dtype=np.float64).ravel()
        sd = r.std() if r.size else 0.0
        records.append((r - r.mean()) / (sd if sd > 0 else 1.0))
    y = np.asarray(labels, dtype=np.int64)
    idx_tr, idx_rest = train_test_split(np.arange(len(records)), test_size=0.2, random_state=0)
    idx_va, idx_te = train_test_split(idx_rest, test_size=0.5, random_state=0)
    splits = {}
    for split, idx, stride in (("train", idx_tr, ECG_STRIDES.__getitem__), ("validation", idx_va, lambda c: 500),
                               ("test", idx_te, lambda c: 500)):
        x, lab = slide_windows([records[i] for i in idx], y[idx], ECG_WINDOW, stride)
        if len(x) == 0:
            raise DataError(f"task {name!r}: no {split} record of {path} is {ECG_WINDOW} samples long")
        splits[split] = (x[:, None, :], lab)
    return RawSplits(*splits["train"], *splits["test"], *splits["validation"])


def load_spherical(name: str, ctx: LoadContext) -> RawSplits:
    """Return Spherical CIFAR-100: x (N, 3, 60, 60) projected images, y (N,) in 0..99; pickle opt-in needed.

    Format: ``s2_cifar100.gz`` is a gzip-compressed pickle ``{'train': {'images':
    (N, 3, 60, 60), 'labels': (N,)}, 'test': {...}}``. ORCA divides by 255; that
    scale disappears in our per-channel normalisation, so it is skipped.
    Validation is a seeded ``data.val_fraction`` split of training (NAS-Bench-360
    holds out the last 20%).
    """
    path = _path(ctx, name, "s2_cifar100.gz")
    obj = _unpickle(ctx, name, path, opener=lambda p: gzip.open(p, "rb"))
    parts = []
    for split in ("train", "test"):
        part = _field(name, path, obj, split, "a dict of 'images' and 'labels'")
        x = np.asarray(_field(name, path, part, "images", "(N, C, H, W)"))
        y = np.asarray(_field(name, path, part, "labels", "(N,)"))
        x = x[:, None] if x.ndim == 3 else x
        if x.ndim != 4 or y.shape != (len(x),):
            raise DataError(f"task {name!r}: {path} {split} images {x.shape}, labels {y.shape}; "
                            "expected (N, C, H, W) and (N,)")
        parts.append((x.astype(np.float32), y.astype(np.int64)))
    return RawSplits(*parts[0], *parts[1])


def load_ninapro(name: str, ctx: LoadContext) -> RawSplits:
    """Return NinaPro DB5: x (N, 1, 16, 52) sEMG windows, y (N,) in 0..17, official validation split.

    Format: ``ninaPro/ninapro_{train,val,test}.npy`` (N, 52, 16) and
    ``ninaPro/label_{train,val,test}.npy`` (N,). As ORCA: transposed to (16, 52)
    with one channel. ORCA reads them with ``allow_pickle=True``; plain arrays
    need no opt-in here (object arrays still do).
    """
    splits = {}
    for split in ("train", "val", "test"):
        xp = _path(ctx, name, f"ninaPro/ninapro_{split}.npy")
        yp = _path(ctx, name, f"ninaPro/label_{split}.npy")
        x, y = _npy(ctx, name, xp), np.asarray(_npy(ctx, name, yp)).ravel()
        if x.ndim != 3 or len(y) != len(x):
            raise DataError(f"task {name!r}: {xp} {x.shape} with labels {y.shape}; expected (N, 52, 16) and (N,)")
        splits[split] = (np.asarray(x, dtype=np.float32).transpose(0, 2, 1)[:, None], y.astype(np.int64))
    return RawSplits(*splits["train"], *splits["test"], *splits["val"])


DARCY_SUBSAMPLE = 5
"""Every 5th grid point of the 421x421 solutions: 85x85 maps (ORCA's DARCY-FLOW-5)."""


def _read_mat(name: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    try:
        found = {v[0] for v in scipy.io.whosmat(path)}
        mat = scipy.io.loadmat(path, variable_names=["coeff", "sol"])
    except NotImplementedError:
        raise DataError(f"task {name!r}: {path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read and h5py "
                        "is not installed to; re-save it as MATLAB v7 (save(..., 'coeff', 'sol', '-v7'))") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"task {name!r}: cannot read {path} as a MATLAB file ({exc})") from None
    if "coeff" not in mat or "sol" not in mat:
        raise DataError(f"task {name!r}: {path} lacks 'coeff'/'sol'; found {sorted(found)}")
    coeff, sol = np.asarray(mat["coeff"]), np.asarray(mat["sol"])
    if coeff.ndim != 3 or coeff.shape != sol.shape:
        raise DataError(f"task {name!r}: {path} coeff {coeff.shape}, sol {sol.shape}; expected equal (N, S, S)")
    return coeff, sol


def _darcy_inputs(coeff: np.ndarray) -> np.ndarray:
    """Return (N, 3, s, s): the coefficient field plus x and y grid coordinates in [0, 1] (as ORCA)."""
    n, s, _ = coeff.shape
    gx, gy = np.meshgrid(np.linspace(0, 1, s), np.linspace(0, 1, s))
    grid = np.broadcast_to(np.stack([gx, gy])[None], (n, 2, s, s))
    return np.concatenate([coeff[:, None], grid], axis=1).astype(np.float32)


def load_darcy_flow(name: str, ctx: LoadContext) -> RawSplits:
    """Return Darcy flow: x (N, 3, 85, 85) coefficient + grid, y (N, 85, 85) pressure maps, official val split.

    Format: ``piececonst_r421_N1024_smooth{1,2}.mat`` (MATLAB v5/v7) with ``coeff``
    and ``sol`` (1024, 421, 421). As ORCA (sub = 5): every 5th point (85x85),
    the first 1,000 maps of smooth1 split 900 train / 100 validation, the first
    100 of smooth2 for test, x and y grid channels added. Smaller files keep the
    same rule: n = min(1000, N), the last n // 10 of them validate. Deviations:
    inputs are normalised per channel (ORCA: per grid point); the loss is MSE on
    targets standardised per grid point (ORCA: relative L2 on decoded maps); the
    metric is relative L2 on decoded maps, as in ORCA.
    """
    train = _read_mat(name, _path(ctx, name, "piececonst_r421_N1024_smooth1.mat"))
    test = _read_mat(name, _path(ctx, name, "piececonst_r421_N1024_smooth2.mat"))

    def sub(a: np.ndarray) -> np.ndarray:
        s = (a.shape[1] - 1) // DARCY_SUBSAMPLE + 1
        return a[:, ::DARCY_SUBSAMPLE, ::DARCY_SUBSAMPLE][:, :s, :s]

    n = min(1000, len(train[0]))
    n_val = n // 10
    if n_val < 1 or n - n_val < 2:
        raise DataError(f"task {name!r}: the smooth1 file holds {len(train[0])} maps; need at least 20")
    coeff, sol = sub(train[0][:n]), sub(train[1][:n]).astype(np.float32)
    x = _darcy_inputs(coeff)
    x_te = _darcy_inputs(sub(test[0][:100]))
    y_te = sub(test[1][:100]).astype(np.float32)
    return RawSplits(x[: n - n_val], sol[: n - n_val], x_te, y_te, x[n - n_val:], sol[n - n_val:])
