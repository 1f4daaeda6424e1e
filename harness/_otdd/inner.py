"""Label-to-label distances: the inner problem of OTDD, one registry entry per method.

``W[a, b]`` is the squared 2-Wasserstein distance between the feature
distributions of class a of one dataset and class b of the other (ground
cost ‖x − x'‖², not halved; uniform weights within each class).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np
import torch

from .chain import SparseWeights, linearised, sqdist
from .data import LabelledSet
from .exact import solve_blocks


class InnerMethod(Protocol):
    """How to compute label distances between two labelled sets."""

    name: str
    min_class_size: int
    needs_sqdist: bool

    def summarize(self, s: LabelledSet) -> object:
        """Return the statistics of ``s`` that depend on one dataset only."""
        ...

    def distances(
        self,
        p: LabelledSet,
        p_stats: object,
        q: LabelledSet,
        q_stats: object,
        d2: Optional[torch.Tensor],
        *,
        symmetric: bool = False,
        support: Optional[list[np.ndarray]] = None,
    ) -> torch.Tensor:
        """Return the (k_p, k_q) float64 label distances, differentiable w.r.t. p.x and q.x.

        d2 : (n_p, n_q) squared distances (required when ``needs_sqdist``).
        ``symmetric`` says that q is p (a self term): the diagonal is zero.
        ``support``, when given, receives the (rows, cols) index arrays of the
        entries that the method's own class-pair plans use, if it has any.
        """
        ...


def _zero_diagonal(w: torch.Tensor) -> torch.Tensor:
    return w * (1.0 - torch.eye(w.shape[0], dtype=w.dtype, device=w.device))


class ExactInner:
    """Exact OT between the class samples (assignment or network simplex per class pair).

    The gradient follows the envelope theorem: d W[a, b] / d D_ij is the optimal
    plan of the block, held fixed.
    """

    name = "exact"
    min_class_size = 1
    needs_sqdist = True

    def summarize(self, s: LabelledSet) -> object:
        """Return None: the exact method has no per-dataset statistics."""
        return None

    def distances(
        self,
        p: LabelledSet,
        p_stats: object,
        q: LabelledSet,
        q_stats: object,
        d2: Optional[torch.Tensor],
        *,
        symmetric: bool = False,
        support: Optional[list[np.ndarray]] = None,
    ) -> torch.Tensor:
        """Return the (k_p, k_q) exact label distances solved on class blocks of ``d2``."""
        if d2 is None:
            d2 = sqdist(p.x, q.x)
        pairs = [(a, b) for a in range(p.k) for b in range(q.k) if not symmetric or a < b]
        plans = solve_blocks(d2.detach().cpu().numpy(), p.offsets, q.offsets, pairs)
        w = np.zeros((p.k, q.k))
        for (a, b), plan in zip(pairs, plans):
            w[a, b] = plan.value
            if symmetric:
                w[b, a] = plan.value
        device = p.x.device
        value = torch.as_tensor(w, device=device)
        if support is not None and plans and not symmetric:
            support += [np.concatenate([pl.rows for pl in plans]), np.concatenate([pl.cols for pl in plans])]
        if not plans:
            return value
        pair_a = np.concatenate([np.full(pl.rows.shape[0], a) for (a, _), pl in zip(pairs, plans)])
        pair_b = np.concatenate([np.full(pl.rows.shape[0], b) for (_, b), pl in zip(pairs, plans)])
        weights = SparseWeights(
            torch.as_tensor(np.concatenate([pl.rows for pl in plans]), device=device),
            torch.as_tensor(np.concatenate([pl.cols for pl in plans]), device=device),
            torch.as_tensor(np.concatenate([pl.vals for pl in plans]), device=device),
        )
        index_a = torch.as_tensor(pair_a, device=device)
        index_b = torch.as_tensor(pair_b, device=device)

        def rule(grad: torch.Tensor) -> tuple[SparseWeights, None]:
            g = grad[index_a, index_b]
            if symmetric:
                g = g + grad[index_b, index_a]
            return weights.scaled(g.double()), None

        return linearised(value, p.x, q.x, None, rule)


@dataclass(frozen=True)
class GaussianStats:
    """Per-class Gaussian statistics of one dataset.

    means : (k, d) float64; traces : (k,) float64 tr Σ_c; factors : k tensors
    R_c of shape (r_c, d) with R_cᵀR_c = Σ_c (unbiased covariance).
    """

    means: torch.Tensor
    traces: torch.Tensor
    factors: list[torch.Tensor]


class GaussianInner:
    """Closed-form W2² between Gaussians fitted to each class.

    W[a, b] = ‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2·tr (Σ_a^½ Σ_b Σ_a^½)^½, with
    unbiased covariances in float64. The last trace equals the nuclear norm
    ‖R_a R_bᵀ‖_* for any factors R_cᵀR_c = Σ_c (the singular values of R_a R_bᵀ
    are the square roots of the eigenvalues of Σ_a Σ_b), so no matrix square
    root is formed: a class with n_c ≤ d samples (or one whose features need
    gradients) uses R_c = (X_c − μ_c)/√(n_c − 1), an (n_c, d) factor, and a
    larger constant class uses diag(√λ)Vᵀ from the eigendecomposition of Σ_c
    with negative eigenvalues clamped to zero (no ridge). The nuclear norm's
    gradient U Vᵀ (torch ``svdvals``) stays finite at the zero singular
    values that rank-deficient classes produce.
    """

    name = "gaussian"
    min_class_size = 2
    needs_sqdist = False

    def summarize(self, s: LabelledSet) -> GaussianStats:
        """Return means, traces and covariance factors of every class of ``s``."""
        track = torch.is_grad_enabled() and s.x.requires_grad
        means, traces, factors = [], [], []
        for c in range(s.k):
            xc = s.block(c)
            mean = xc.mean(0)
            centred = (xc - mean) / math.sqrt(xc.shape[0] - 1)
            if track or xc.shape[0] <= s.d:
                factor = centred
            else:
                lam, vec = torch.linalg.eigh(centred.T @ centred)
                keep = lam > 0
                factor = (lam[keep].sqrt()[:, None] * vec[:, keep].T).contiguous()
            means.append(mean)
            traces.append((centred * centred).sum())
            factors.append(factor)
        return GaussianStats(torch.stack(means), torch.stack(traces), factors)

    def distances(
        self,
        p: LabelledSet,
        p_stats: object,
        q: LabelledSet,
        q_stats: object,
        d2: Optional[torch.Tensor],
        *,
        symmetric: bool = False,
        support: Optional[list[np.ndarray]] = None,
    ) -> torch.Tensor:
        """Return the (k_p, k_q) Gaussian label distances from the two statistics (no ``support``)."""
        assert isinstance(p_stats, GaussianStats) and isinstance(q_stats, GaussianStats)
        diff = p_stats.means[:, None, :] - q_stats.means[None, :, :]
        w = (diff * diff).sum(-1) + p_stats.traces[:, None] + q_stats.traces[None, :]
        rmax = max(f.shape[0] for f in q_stats.factors)
        # Zero rows leave the singular values unchanged, so the target factors
        # are padded into one batch per source class.
        padded = torch.stack(
            [torch.nn.functional.pad(f, (0, 0, 0, rmax - f.shape[0])) for f in q_stats.factors]
        )
        nuclear = torch.stack(
            [torch.linalg.svdvals(torch.matmul(fa, padded.transpose(1, 2))).sum(-1) for fa in p_stats.factors]
        )
        w = (w - 2.0 * nuclear).clamp(min=0.0)
        return _zero_diagonal(w) if symmetric else w


INNER_METHODS: dict[str, InnerMethod] = {m.name: m for m in (ExactInner(), GaussianInner())}
"""Registry of inner (label distance) methods by name."""


def get_inner(name: str) -> InnerMethod:
    """Return the inner method called ``name``; ``ValueError`` lists the choices otherwise."""
    try:
        return INNER_METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown inner method {name!r}; expected one of {sorted(INNER_METHODS)}") from None
