"""Stage 1 (align): train only the embedder to bring embedded targets close to the proxy.

Each alignment epoch is one full-batch step over the alignment sample, as in
ORCA. The OTDD with exact inner and exact outer problems between the
mean-pooled embedded sample and the proxy is recorded before the first step
and after every step, whatever the objective, because the analysis correlates
it with accuracy.

``otdd-exact`` / ``otdd-gaussian`` minimise one joint labelled OTDD;
``orca-otdd-exact`` / ``orca-otdd-gaussian`` minimise ORCA's own loss
(:func:`harness.otdd.orca_distance`): for each target class, ORCA's per-class
sample (``embedder.max_per_class``, whole batches of ``finetune.batch_size`` until
past it, drawn afresh each epoch) as one unlabelled set, its OTDD to the labelled
proxy (outer debiased Sinkhorn, ε = 0.1) weighted by the class frequency. Every
ORCA config uses the exact inner method (``orca-otdd-exact``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .embedders import Embedder
from .errors import ConfigError, TrialFailure
from .otdd import OrcaSource, OTDDSource
from .proxies import Proxy

__all__ = ["OBJECTIVES", "AlignResult", "ObjectiveContext", "align", "check_objective", "orca_class_take"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""feats (n, D), labels (n,) -> 0-dim loss."""


@dataclass(frozen=True)
class ObjectiveContext:
    """What an objective is built from: the proxy and, for ORCA's class-wise loss, its per-class sample."""

    proxy: Proxy
    max_per_class: int | None = None
    """Rows of each target class per step (after :func:`orca_class_take`); None: all."""
    seed: int = 0
    """Seeds the per-step draw of each class's rows."""


def orca_class_take(max_per_class: int | None, batch_size: int) -> int | None:
    """Return how many rows of a class ORCA's rule holds: whole batches until past ``max_per_class`` (or None).

    ORCA (``src/embedder.py``) appends class-c batches of ``batch_size`` and stops once it
    holds *more than* ``maxsamples``: 128 with batches of 16 holds 144 rows.
    """
    if max_per_class is None:
        return None
    return (max_per_class // batch_size + 1) * batch_size


def _otdd(inner: str, outer: str, debiased: bool) -> Callable[[ObjectiveContext], Loss]:
    def make(ctx: ObjectiveContext) -> Loss:
        return OTDDSource(ctx.proxy.x.double(), ctx.proxy.y, inner=inner, outer=outer, debiased=debiased).distance
    return make


def _orca(inner: str) -> Callable[[ObjectiveContext], Loss]:
    def make(ctx: ObjectiveContext) -> Loss:
        source = OrcaSource(ctx.proxy.x.double(), ctx.proxy.y, inner=inner, outer="sinkhorn",
                            max_per_class=ctx.max_per_class)
        gen = torch.Generator().manual_seed(ctx.seed)

        def loss(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            # each class keeps its first rows in a fresh order: ORCA's shuffled class loaders
            order = torch.randperm(len(labels), generator=gen)
            return source.distance(feats[order.to(feats.device)], labels[order.to(labels.device)])
        return loss
    return make


def _mmd(ctx: ObjectiveContext) -> Loss:
    xs = ctx.proxy.x.double()

    def loss(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        xt = feats.double()
        z = torch.cat([xs.to(xt.device), xt])
        d2 = torch.cdist(z, z).pow(2)
        bandwidth = d2.detach().median().clamp_min(1e-12)  # median heuristic
        k = torch.exp(-d2 / bandwidth)
        n = len(xs)
        return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
    return loss


def _l2(ctx: ObjectiveContext) -> Loss:
    mu, sd = ctx.proxy.x.double().mean(0), ctx.proxy.x.double().std(0)

    def loss(feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        xt = feats.double()
        return (xt.mean(0) - mu.to(xt.device)).pow(2).sum() + (xt.std(0) - sd.to(xt.device)).pow(2).sum()
    return loss


OBJECTIVES: dict[str, Callable[[ObjectiveContext], Loss] | None] = {
    "otdd-exact": _otdd("exact", "emd", False),
    "otdd-gaussian": _otdd("gaussian", "sinkhorn", True),
    "orca-otdd-exact": _orca("exact"),
    "orca-otdd-gaussian": _orca("gaussian"),
    "mmd": _mmd,
    "l2": _l2,
    "none": None,
}
"""Alignment objectives. ``otdd-gaussian`` is one joint OTDD with a Gaussian inner and a debiased Sinkhorn
outer (not ORCA's: every ORCA config uses ``otdd-exact`` inside its class-wise loss, ``orca-otdd-exact``)."""


_MEASURED = "otdd-exact"
"""The objective whose loss equals the recorded OTDD (exact inner, exact outer)."""


def check_objective(name: str) -> None:
    """Raise ConfigError listing the choices when ``name`` is not a registered objective."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown embedder.objective {name!r}; expected one of {sorted(OBJECTIVES)}")


@dataclass(frozen=True)
class AlignResult:
    """OTDD (exact/exact) before alignment and after each epoch; the final loss value."""

    otdd_curve: list[float]
    losses: list[float]


def align(embedder: Embedder, x: torch.Tensor, y: torch.Tensor, proxy: Proxy, *,
          objective: str, epochs: int, lr: float,
          progress: Callable[[int, float], None] | None = None,
          max_per_class: int | None = None, seed: int = 0) -> AlignResult:
    """Return the OTDD curve of training ``embedder`` on ``x`` (n, C, *S), ``y`` (n,) towards ``proxy``.

    ``max_per_class`` and ``seed`` reach the class-wise (``orca-*``) objectives only:
    rows of each class per step (see :func:`orca_class_take`) and the seed of their draw.

    Runs on the embedder's device (``x`` is moved there), in float32 with the
    OTDD in float64 — never under autocast; the proxy's OTDD terms follow the
    features to that device.
    """
    check_objective(objective)
    x = x.to(next(embedder.parameters()).device)
    measure_src = OTDDSource(proxy.x.double(), proxy.y, inner="exact", outer="emd")
    was_training = embedder.training
    embedder.eval()  # no dropout in the embedder, but keep norm statistics fixed in spirit

    def measure() -> float:
        with torch.no_grad():
            return float(measure_src.distance(embedder(x).mean(dim=1).double(), y))

    losses: list[float] = []
    make = OBJECTIVES[objective]
    if make is None or epochs == 0:
        curve = [measure()]
    else:
        # otdd-exact's loss *is* the recorded OTDD: reuse its value instead of solving twice.
        same = objective == _MEASURED
        loss_fn = measure_src.distance if same else make(ObjectiveContext(proxy, max_per_class, seed))
        curve = [] if same else [measure()]
        opt = torch.optim.Adam(embedder.parameters(), lr=lr)
        for epoch in range(1, epochs + 1):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(embedder(x).mean(dim=1).double(), y)
            if not torch.isfinite(loss):
                raise TrialFailure(f"embedder alignment: the {objective} loss became {loss.item()} at epoch {epoch}; "
                                   "lower embedder.lr or try another objective")
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            curve.append(losses[-1] if same else measure())
            if progress is not None:
                progress(epoch, losses[-1])
        if same:
            curve.append(measure())
    embedder.train(was_training)
    return AlignResult(otdd_curve=curve, losses=losses)
