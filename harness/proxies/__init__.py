"""Proxy datasets of the body's own modality, as labelled features, cached on disk.

A proxy is what ORCA aligns the embedder to: ``(n, D)`` features in the space
where the embedder's mean-pooled tokens live, with ``(n,)`` integer labels.
For ``embedder.entry == "body"`` that space is the body's word embeddings;
for ``"bypass"`` it is the output of the body's embedding module.

Layout: ``_registry`` holds :class:`ProxySpec`, :class:`ProxyRequest`, the
registry and the disk cache (:func:`get_proxy`); ``_features`` the feature
helpers every family shares; one module per family registers its proxies when
imported: ``_body`` (vocab, fake), ``_text`` (fortunes, text-file, conll2003),
``_images`` (digits, fashion-mnist, cifar10-bin).

How to add a proxy:

1. In the module of its family (or a new module ``harness/proxies/_NAME.py``),
   write ``build(req: ProxyRequest, body: Body, arg: str) -> (x, y)`` returning
   ``x (n, D) float32`` and ``y (n,) int64``, seeded by ``req.seed``, with
   ``req.samples`` rows (the helpers of ``_features`` give the features of texts
   and images), and register it at the bottom of that module:
   ``register_proxy(ProxySpec("NAME", build, "text" | "vision" | "any", "one-line description"))``;
   a proxy read from a file given as ``NAME:PATH`` adds ``takes_path=True, stamp=file_stamp``,
   one that needs something installed adds ``available=`` and ``requires=``.
2. A new module only: add its name to the import line below (the one registry line).

Nothing else changes: ``embedder.proxy=NAME``, ``orca-ablate proxies`` and the
cache key (which covers ``ProxyRequest`` and the stamp) pick it up.
"""

from __future__ import annotations

from ._registry import (
    CACHE_ENV,
    PROXIES,
    Proxy,
    ProxyRequest,
    ProxySpec,
    cache_dir,
    cache_path,
    check_modality,
    file_stamp,
    get_proxy,
    get_proxy_spec,
    list_proxies,
    register_proxy,
)

from . import _body, _text, _images  # noqa: E402, F401, I001 - registers each family, in listing order
from ._images import read_cifar10_bin  # noqa: E402
from ._text import FORTUNES_DIRS, read_conll2003, read_fortunes, read_text_file  # noqa: E402

__all__ = ["CACHE_ENV", "FORTUNES_DIRS", "PROXIES", "Proxy", "ProxyRequest", "ProxySpec", "cache_dir", "cache_path",
           "check_modality", "file_stamp", "get_proxy", "get_proxy_spec", "list_proxies", "read_cifar10_bin",
           "read_conll2003", "read_fortunes", "read_text_file", "register_proxy"]
