"""Proxy datasets of the body's own modality, as labelled features, cached on disk.

A proxy is what ORCA aligns the embedder to: ``(n, D)`` features in the space
where the embedder's mean-pooled tokens live, with ``(n,)`` integer labels.
For ``embedder.entry == "body"`` that space is the body's word embeddings;
for ``"bypass"`` it is the output of the body's embedding module.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .bodies import Body
from .errors import ConfigError, DataError
from .proxy_files import _file_stamp, _fortunes_dir, read_cifar10_bin, read_conll2003, read_fortunes, read_text_file
from .tasks._loaders import fashion_mnist_dir, read_idx

__all__ = ["PROXIES", "Proxy", "ProxyRequest", "ProxySpec", "cache_dir", "cache_path", "check_modality", "get_proxy",
           "get_proxy_spec", "list_proxies", "read_cifar10_bin", "read_conll2003", "read_fortunes",
           "read_text_file", "register_proxy"]

CACHE_ENV = "ORCA_ABLATE_CACHE"
_CACHE_VERSION = 1


def cache_dir() -> Path:
    """Return the cache folder: ``$ORCA_ABLATE_CACHE``, else ``~/.cache/orca-ablate``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "orca-ablate")


@dataclass(frozen=True)
class Proxy:
    """Labelled proxy features.  x : (n, D) float32;  y : (n,) int64 in 0..k-1."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    description: str


@dataclass(frozen=True)
class ProxyRequest:
    """Everything that changes a proxy's features (and so its cache key)."""

    name: str
    samples: int
    classes: int
    entry: str
    seed: int
    body_path: str
    pretrained: bool

    def key(self) -> str:
        """Return a stable cache key (random bodies key on the seed too)."""
        fields = {**self.__dict__, "version": _CACHE_VERSION}
        if self.pretrained:
            fields["seed"] = None if self.name != "fake" else self.seed
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy: its builder, the body modality it suits, and when it is available.

    ``build(request, body, arg)`` returns ``x (n, D) float32, y (n,) int64``; ``arg`` is
    the part after ``name:`` (a path for file-based proxies). ``stamp(arg)`` returns
    what identifies the source files (size and mtime) so that changed files miss the cache.
    """

    name: str
    build: Callable[[ProxyRequest, Body, str], tuple[np.ndarray, np.ndarray]]
    modality: str
    """``text``, ``vision`` or ``any``: the body modality the proxy's raw data belongs to."""
    description: str
    available: Callable[[], bool] = lambda: True
    requires: str = ""
    takes_path: bool = False
    stamp: Callable[[str], str] = lambda arg: ""


PROXIES: dict[str, ProxySpec] = {}


def register_proxy(spec: ProxySpec) -> ProxySpec:
    """Add a proxy to the registry; return it."""
    PROXIES[spec.name] = spec
    return spec


def _vocab_ids(body: Body, n: int, rng: np.random.Generator) -> torch.Tensor:
    vocab = body.word_embeddings.shape[0]
    first = min(1000, vocab // 10)  # BERT-like vocabularies keep special and unused tokens first
    ids = rng.choice(np.arange(first, vocab), size=min(n, vocab - first), replace=False)
    return torch.as_tensor(np.sort(ids), dtype=torch.int64)


def _reference_features(body: Body, n: int, rng: np.random.Generator, entry: str) -> torch.Tensor:
    """Return (n, D) features of the body's own inputs in the space the embedder's tokens live in.

    Text bodies: single vocabulary tokens (word embeddings for ``entry="body"``, the
    embedding module's output for ``"bypass"``). Vision bodies: mean-pooled patch
    embeddings of Gaussian-noise images.
    """
    if body.modality == "vision":
        cfg = body.model.config
        size = int(getattr(cfg, "image_size", 224))
        images = torch.from_numpy(rng.standard_normal((n, int(getattr(cfg, "num_channels", 3)), size, size)))
        return _embed_images(body, images.float())
    ids = _vocab_ids(body, n, rng)
    if entry == "body":
        return body.word_embeddings[ids]
    return _embed_token_ids(body, ids[:, None], torch.ones(len(ids), 1))


@torch.no_grad()
def _embed_token_ids(body: Body, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Return (n, D) mask-weighted means of the body's embedding-module outputs for ids (n, T)."""
    was_training = body.model.training
    body.model.eval()
    outs = []
    for i in range(0, len(ids), batch):
        h = body.model.embeddings(input_ids=ids[i:i + batch])
        m = mask[i:i + batch, :, None].to(h.dtype)
        outs.append((h * m).sum(1) / m.sum(1).clamp_min(1))
    body.model.train(was_training)
    return torch.cat(outs)


@torch.no_grad()
def _embed_images(body: Body, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Return (n, D) mean-pooled patch embeddings of images (n, C, H, W), resized to the body's input."""
    import torch.nn.functional as F

    cfg = body.model.config
    size, channels = int(getattr(cfg, "image_size", 224)), int(getattr(cfg, "num_channels", 3))
    was_training = body.model.training
    body.model.eval()
    outs = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float()
        if x.shape[1] != channels:
            x = x.mean(1, keepdim=True).expand(-1, channels, -1, -1)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        outs.append(body.model.embeddings(pixel_values=x).mean(1))
    body.model.train(was_training)
    return torch.cat(outs)


def _text_features(body: Body, texts: list[str], entry: str) -> torch.Tensor:
    """Return (n, D) features of texts: mean over their tokens (no special tokens), in the entry's space."""
    tok = body.tokenizer()
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=32, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"].float()
    if entry == "body":
        m = mask[:, :, None]
        return (body.word_embeddings[ids] * m).sum(1) / m.sum(1).clamp_min(1)
    return _embed_token_ids(body, ids, mask)


def _subsample(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(n_total)[: min(n, n_total)])


def _build_vocab(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(req.seed)
    x = _reference_features(body, req.samples, rng, req.entry).numpy().astype(np.float32)
    labels = KMeans(n_clusters=req.classes, n_init=4, random_state=req.seed).fit_predict(x.astype(np.float64))
    return x, labels.astype(np.int64)


def _build_fake(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(req.seed)
    ref = _reference_features(body, min(2000, max(req.samples, 256)), rng, req.entry).numpy().astype(np.float64)
    x = rng.normal(ref.mean(0), ref.std(0), size=(req.samples, ref.shape[1])).astype(np.float32)
    return x, rng.integers(0, req.classes, req.samples).astype(np.int64)


def _labelled_texts(req: ProxyRequest, body: Body, texts: list[str], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(req.seed)
    idx = _subsample(len(texts), req.samples, rng)
    names = sorted(set(labels))
    y = np.array([names.index(labels[i]) for i in idx], dtype=np.int64)
    x = _text_features(body, [texts[i] for i in idx], req.entry).numpy().astype(np.float32)
    return x, y


def _build_fortunes(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = read_fortunes(Path(arg) if arg else None)
    return _labelled_texts(req, body, texts, labels)


def _build_text_file(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = read_text_file(Path(arg))
    return _labelled_texts(req, body, texts, labels)


def _build_conll(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    words, tags = read_conll2003(Path(arg))
    return _labelled_texts(req, body, words, tags)


def _labelled_images(req: ProxyRequest, body: Body, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(req.seed)
    idx = _subsample(len(images), req.samples, rng)
    x = torch.from_numpy(images[idx].astype(np.float32))
    x = (x - x.mean()) / x.std().clamp_min(1e-8)
    return _embed_images(body, x).numpy().astype(np.float32), labels[idx].astype(np.int64)


def _build_digits(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _labelled_images(req, body, d.images[:, None], d.target)


def _build_fashion(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    root = fashion_mnist_dir()
    if root is None:
        raise DataError("proxy 'fashion-mnist': Fashion-MNIST files not found; install Debian's dataset-fashion-mnist")
    return _labelled_images(req, body, read_idx(root / "train-images-idx3-ubyte.gz")[:, None],
                            read_idx(root / "train-labels-idx1-ubyte.gz"))


def _build_cifar10(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_cifar10_bin(Path(arg))
    return _labelled_images(req, body, images, labels)


register_proxy(ProxySpec("vocab", _build_vocab, "text",
                         "the body's own token embeddings, labelled by seeded k-means"))
register_proxy(ProxySpec("fake", _build_fake, "any",
                         "Gaussian features at the body's embedding scale, random labels (the paper's fake data)"))
register_proxy(ProxySpec("fortunes", _build_fortunes, "text", "English fortunes, labelled by category",
                         available=lambda: _fortunes_dir() is not None,
                         requires="Debian package fortunes (apt-get install fortunes)"))
register_proxy(ProxySpec("text-file", _build_text_file, "text", "your label<TAB>text file: text-file:PATH",
                         takes_path=True, stamp=_file_stamp))
register_proxy(ProxySpec("conll2003", _build_conll, "text",
                         "CoNLL-2003 column file, NER tags as labels: conll2003:PATH", takes_path=True, stamp=_file_stamp))
register_proxy(ProxySpec("digits", _build_digits, "vision", "scikit-learn 8x8 digits (vision bodies)"))
register_proxy(ProxySpec("fashion-mnist", _build_fashion, "vision", "Fashion-MNIST images (vision bodies)",
                         available=lambda: fashion_mnist_dir() is not None, requires="Debian package dataset-fashion-mnist"))
register_proxy(ProxySpec("cifar10-bin", _build_cifar10, "vision",
                         "CIFAR-10 binary batches (no pickle): cifar10-bin:PATH (vision bodies)",
                         takes_path=True, stamp=_file_stamp))


def get_proxy_spec(name: str) -> ProxySpec:
    """Return a registered proxy; raise ConfigError listing the choices when unknown or missing its path."""
    base, sep, arg = name.partition(":")
    if base not in PROXIES:
        raise ConfigError(f"unknown proxy {name!r}; expected one of {sorted(PROXIES)}")
    spec = PROXIES[base]
    if spec.takes_path and not arg:
        raise ConfigError(f"proxy {base!r} needs a path: {base}:PATH")
    return spec


def check_modality(spec: ProxySpec, body: Body) -> None:
    """Raise ConfigError when the proxy's raw data are not of the body's modality."""
    if spec.modality not in ("any", body.modality):
        fitting = sorted(n for n, s in PROXIES.items() if s.modality in ("any", body.modality))
        kind = {"text": "a text dataset", "vision": "an image dataset"}[spec.modality]
        raise ConfigError(f"proxy {spec.name!r} is {kind}, but the body is a {body.modality} model "
                          f"({body.model_type}): ORCA's proxy must be of the body's own modality; "
                          f"expected one of {fitting}")


def cache_path(req: ProxyRequest) -> Path:
    """Return the cache file of a proxy request (its key covers the source files' size and mtime)."""
    spec = get_proxy_spec(req.name)
    key = hashlib.sha256((req.key() + spec.stamp(req.name.partition(":")[2])).encode()).hexdigest()[:24]
    return cache_dir() / "proxies" / f"{spec.name}-{key}.npz"


def get_proxy(req: ProxyRequest, body: Body, *, use_cache: bool = True) -> Proxy:
    """Return the proxy of ``req`` for ``body``, from the disk cache when present."""
    spec = get_proxy_spec(req.name)
    check_modality(spec, body)
    arg = req.name.partition(":")[2]
    if req.samples < req.classes or req.classes < 2:
        raise ConfigError(f"embedder.proxy_samples={req.samples}, embedder.proxy_classes={req.classes}: "
                          "need at least 2 classes and at least as many samples as classes")
    path = cache_path(req)
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    else:
        x, y = spec.build(req, body, arg)
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, x=x, y=y)
            os.replace(tmp, path)  # atomic: concurrent workers never read a half-written file
    return Proxy(req.name, torch.from_numpy(np.asarray(x, dtype=np.float32)),
                 torch.from_numpy(np.asarray(y, dtype=np.int64)), spec.description)


def list_proxies() -> list[ProxySpec]:
    """Return every registered proxy spec."""
    return list(PROXIES.values())
