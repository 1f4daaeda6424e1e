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
from .errors import ConfigError

__all__ = ["PROXIES", "Proxy", "ProxyRequest", "cache_dir", "get_proxy", "list_proxies", "register_proxy"]

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
    """A registered proxy: its builder, the body modality it suits, and when it is available."""

    name: str
    build: Callable[[ProxyRequest, Body], tuple[np.ndarray, np.ndarray]]
    modality: str
    description: str
    available: Callable[[], bool] = lambda: True
    requires: str = ""


PROXIES: dict[str, ProxySpec] = {}


def register_proxy(spec: ProxySpec) -> ProxySpec:
    """Add a proxy to the registry; return it."""
    PROXIES[spec.name] = spec
    return spec


def _reference_features(body: Body, token_ids: torch.Tensor, entry: str) -> torch.Tensor:
    """Return (n, D) features of single tokens in the space the embedder's tokens live in."""
    if entry == "body":
        return body.word_embeddings[token_ids]
    was_training = body.model.training
    body.model.eval()
    with torch.no_grad():
        out = body.model.embeddings(input_ids=token_ids[:, None])[:, 0]
    body.model.train(was_training)
    return out


def _vocab_ids(body: Body, n: int, rng: np.random.Generator) -> torch.Tensor:
    vocab = body.word_embeddings.shape[0]
    first = min(1000, vocab // 10)  # BERT-like vocabularies keep special and unused tokens first
    ids = rng.choice(np.arange(first, vocab), size=min(n, vocab - first), replace=False)
    return torch.as_tensor(np.sort(ids), dtype=torch.int64)


def _build_vocab(req: ProxyRequest, body: Body) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(req.seed)
    x = _reference_features(body, _vocab_ids(body, req.samples, rng), req.entry).numpy().astype(np.float32)
    labels = KMeans(n_clusters=req.classes, n_init=4, random_state=req.seed).fit_predict(x.astype(np.float64))
    return x, labels.astype(np.int64)


def _build_fake(req: ProxyRequest, body: Body) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(req.seed)
    ref = _reference_features(body, _vocab_ids(body, 2000, rng), req.entry).numpy().astype(np.float64)
    x = rng.normal(ref.mean(0), ref.std(0), size=(req.samples, ref.shape[1])).astype(np.float32)
    return x, rng.integers(0, req.classes, req.samples).astype(np.int64)


register_proxy(ProxySpec("vocab", _build_vocab, "text",
                         "the body's own token embeddings, labelled by seeded k-means"))
register_proxy(ProxySpec("fake", _build_fake, "any",
                         "Gaussian features at the body's embedding scale, random labels (the paper's fake data)"))


def get_proxy_spec(name: str) -> ProxySpec:
    """Return a registered proxy; raise ConfigError listing the choices when unknown."""
    base = name.partition(":")[0] if ":" in name else name
    if base not in PROXIES:
        raise ConfigError(f"unknown proxy {name!r}; expected one of {sorted(PROXIES)}")
    return PROXIES[base]


def get_proxy(req: ProxyRequest, body: Body, *, use_cache: bool = True) -> Proxy:
    """Return the proxy of ``req`` for ``body``, from the disk cache when present."""
    spec = get_proxy_spec(req.name)
    if req.samples < req.classes or req.classes < 2:
        raise ConfigError(f"embedder.proxy_samples={req.samples}, embedder.proxy_classes={req.classes}: "
                          "need at least 2 classes and at least as many samples as classes")
    path = cache_dir() / "proxies" / f"{req.name.replace('/', '_').replace(':', '_')}-{req.key()}.npz"
    if use_cache and path.exists():
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    else:
        x, y = spec.build(req, body)
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
