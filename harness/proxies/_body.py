"""Proxies made from the body itself: its vocabulary (``vocab``) and Gaussian look-alikes (``fake``)."""

from __future__ import annotations

import numpy as np

from ..bodies import Body
from ._features import reference_features
from ._registry import ProxyRequest, ProxySpec, register_proxy

__all__: list[str] = []


def _build_vocab(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(req.seed)
    x = reference_features(body, req.samples, rng, req.entry).numpy().astype(np.float32)
    labels = KMeans(n_clusters=req.classes, n_init=4, random_state=req.seed).fit_predict(x.astype(np.float64))
    return x, labels.astype(np.int64)


def _build_fake(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(req.seed)
    ref = reference_features(body, min(2000, max(req.samples, 256)), rng, req.entry).numpy().astype(np.float64)
    x = rng.normal(ref.mean(0), ref.std(0), size=(req.samples, ref.shape[1])).astype(np.float32)
    return x, rng.integers(0, req.classes, req.samples).astype(np.int64)


register_proxy(ProxySpec("vocab", _build_vocab, "text",
                         "the body's own token embeddings, labelled by seeded k-means"))
register_proxy(ProxySpec("fake", _build_fake, "any",
                         "Gaussian features at the body's embedding scale, random labels (the paper's fake data)"))
