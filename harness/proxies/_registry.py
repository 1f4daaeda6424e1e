"""The proxy registry, the request that keys a proxy, and its disk cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..bodies import Body
from ..errors import ConfigError
from ..paths import CACHE_ENV, cache_dir

__all__ = ["CACHE_ENV", "PROXIES", "Proxy", "ProxyRequest", "ProxySpec", "cache_dir", "cache_path", "check_modality",
           "file_stamp", "get_proxy", "get_proxy_spec", "list_proxies", "register_proxy"]

_CACHE_VERSION = 1


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


def file_stamp(arg: str) -> str:
    """Return the path, size and mtime of the file ``arg`` (of every file under it, for a folder): a ``stamp``."""
    p = Path(arg)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return ";".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.is_file())


PROXIES: dict[str, ProxySpec] = {}
"""Registered proxies by name, in registration order (the order of ``orca-ablate proxies``)."""


def register_proxy(spec: ProxySpec) -> ProxySpec:
    """Return ``spec`` after adding it to the registry under its name."""
    PROXIES[spec.name] = spec
    return spec


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
    """Return every registered proxy spec, in registration order."""
    return list(PROXIES.values())
