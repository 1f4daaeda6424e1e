"""Image proxies for vision bodies: scikit-learn digits, Fashion-MNIST, CIFAR-10 binary batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bodies import Body
from ..errors import DataError
from ..tasks._loaders import fashion_mnist_dir, read_idx
from ._features import labelled_images
from ._registry import ProxyRequest, ProxySpec, file_stamp, register_proxy

__all__ = ["read_cifar10_bin"]


def read_cifar10_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return images (n, 3, 32, 32) uint8 and labels (n,) from CIFAR-10 binary batches (a file or a folder)."""
    files = sorted(path.glob("data_batch_*.bin")) or sorted(path.glob("*.bin")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"proxy 'cifar10-bin:{path}': no CIFAR-10 binary batches (data_batch_*.bin) found")
    raw = np.concatenate([np.fromfile(f, dtype=np.uint8) for f in files])
    if raw.size % 3073:
        raise DataError(f"{path}: size {raw.size} is not a multiple of 3073 bytes (1 label + 3x32x32 pixels)")
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _build_digits(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return labelled_images(req, body, d.images[:, None], d.target)


def _build_fashion(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    root = fashion_mnist_dir()
    if root is None:
        raise DataError("proxy 'fashion-mnist': Fashion-MNIST files not found; install Debian's dataset-fashion-mnist")
    return labelled_images(req, body, read_idx(root / "train-images-idx3-ubyte.gz")[:, None],
                           read_idx(root / "train-labels-idx1-ubyte.gz"))


def _build_cifar10(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_cifar10_bin(Path(arg))
    return labelled_images(req, body, images, labels)


register_proxy(ProxySpec("digits", _build_digits, "vision", "scikit-learn 8x8 digits (vision bodies)"))
register_proxy(ProxySpec("fashion-mnist", _build_fashion, "vision", "Fashion-MNIST images (vision bodies)",
                         available=lambda: fashion_mnist_dir() is not None,
                         requires="Debian package dataset-fashion-mnist"))
register_proxy(ProxySpec("cifar10-bin", _build_cifar10, "vision",
                         "CIFAR-10 binary batches (no pickle): cifar10-bin:PATH (vision bodies)",
                         takes_path=True, stamp=file_stamp))
