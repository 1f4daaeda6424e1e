"""The OTDD ground cost and backpropagation through it.

Every transport value here is, at the solver's optimum, a function of a cost
matrix built from squared distances ``D[i, j] = ‖x_i − x'_j‖²`` and a label
distance matrix ``W``. The solvers return the value and the derivative of the
value with respect to the cost entries (a transport plan, by the envelope
theorem, or an implicit-differentiation correction of it); :func:`linearised`
turns that into autograd edges to the features and to ``W``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from .data import LabelledSet


@dataclass(frozen=True)
class SparseWeights:
    """Weights on a few entries of an (n_p, n_q) matrix: ``vals[t]`` at ``(rows[t], cols[t])``.

    rows, cols : (nnz,) int64 tensors; vals : (nnz,) float64 tensor.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    vals: torch.Tensor

    def scaled(self, factor: Union[float, torch.Tensor]) -> SparseWeights:
        """Return the same pattern with values multiplied by ``factor``."""
        return SparseWeights(self.rows, self.cols, self.vals * factor)


Weights = Union[torch.Tensor, SparseWeights]
"""Dense (n_p, n_q) float64 tensor or :class:`SparseWeights`."""

BackwardRule = Callable[[torch.Tensor], "tuple[Optional[Weights], Optional[torch.Tensor]]"]
"""Maps the output gradient to (weights on the squared distances D, gradient of W)."""


def sqdist(xp: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """Return the (n_p, n_q) float64 squared distances, detached, in one buffer.

    xp : (n_p, d), xq : (n_q, d) float64 tensors.
    """
    with torch.no_grad():
        xp, xq = xp.detach(), xq.detach()
        out = torch.addmm((xq * xq).sum(1)[None, :], xp, xq.T, beta=1.0, alpha=-2.0)
        out.add_((xp * xp).sum(1)[:, None])
        return out.clamp_(min=0.0)


def add_label_term_(cost: torch.Tensor, w: torch.Tensor, p: LabelledSet, q: LabelledSet, scale: float) -> None:
    """Add ``scale * w[a, b]`` to every class block (a, b) of ``cost`` in place.

    cost : (n_p, n_q) float64, w : (k_p, k_q) tensor (read without autograd).
    """
    w_host = w.detach().cpu().double().numpy()
    for a in range(p.k):
        rows = slice(int(p.offsets[a]), int(p.offsets[a + 1]))
        for b in range(q.k):
            cost[rows, int(q.offsets[b]) : int(q.offsets[b + 1])].add_(scale * float(w_host[a, b]))


def ground_cost(d2: torch.Tensor, w: torch.Tensor, p: LabelledSet, q: LabelledSet) -> torch.Tensor:
    """Turn squared distances into the OTDD cost ``½‖x−x'‖² + ½·W[y, y']`` in place and return it.

    d2 : (n_p, n_q) float64, overwritten; w : (k_p, k_q).
    """
    d2.mul_(0.5)
    add_label_term_(d2, w, p, q, 0.5)
    return d2


def block_sums(weights: Weights, p: LabelledSet, q: LabelledSet) -> torch.Tensor:
    """Return the (k_p, k_q) float64 sums of ``weights`` over each class block."""
    if isinstance(weights, SparseWeights):
        out = torch.zeros(p.k, q.k, dtype=torch.float64, device=weights.vals.device)
        out.index_put_((p.codes[weights.rows], q.codes[weights.cols]), weights.vals.double(), accumulate=True)
        return out
    rows = torch.zeros(p.k, weights.shape[1], dtype=weights.dtype, device=weights.device)
    rows.index_add_(0, p.codes, weights)
    out = torch.zeros(p.k, q.k, dtype=weights.dtype, device=weights.device)
    return out.index_add_(1, q.codes, rows)


def sqdist_vjp(
    weights: Weights, xp: torch.Tensor, xq: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the gradients of ``Σ_ij G_ij ‖xp_i − xq_j‖²`` w.r.t. xp (n_p, d) and xq (n_q, d)."""
    if isinstance(weights, SparseWeights):
        diff = xp[weights.rows] - xq[weights.cols]
        diff.mul_(2.0 * weights.vals[:, None])
        gp = torch.zeros_like(xp).index_add_(0, weights.rows, diff)
        gq = torch.zeros_like(xq).index_add_(0, weights.cols, diff.neg_())
        return gp, gq
    gp = torch.addmm(weights.sum(1)[:, None] * xp, weights, xq, beta=2.0, alpha=-2.0)
    gq = torch.addmm(weights.sum(0)[:, None] * xq, weights.T, xp, beta=2.0, alpha=-2.0)
    return gp, gq


class _Linearised(torch.autograd.Function):
    """Attach a precomputed value to xp, xq and W through a backward rule."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        xp: torch.Tensor,
        xq: torch.Tensor,
        w: Optional[torch.Tensor],
        value: torch.Tensor,
        rule: BackwardRule,
    ) -> torch.Tensor:
        ctx.save_for_backward(xp, xq)
        ctx.rule = rule  # type: ignore[attr-defined]
        return value.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[Optional[torch.Tensor], ...]:
        xp, xq = ctx.saved_tensors  # type: ignore[attr-defined]
        d_weights, w_grad = ctx.rule(grad)  # type: ignore[attr-defined]
        gp: Optional[torch.Tensor] = None
        gq: Optional[torch.Tensor] = None
        need_p, need_q, need_w = ctx.needs_input_grad[:3]  # type: ignore[attr-defined]
        if d_weights is not None and (need_p or need_q):
            gp, gq = sqdist_vjp(d_weights, xp, xq)
        return (
            gp if need_p else None,
            gq if need_q else None,
            w_grad if need_w else None,
            None,
            None,
        )


def linearised(
    value: torch.Tensor,
    xp: torch.Tensor,
    xq: torch.Tensor,
    w: Optional[torch.Tensor],
    rule: BackwardRule,
) -> torch.Tensor:
    """Return ``value`` with autograd edges to xp, xq and w defined by ``rule``.

    value : any-shape float64 tensor computed without autograd; xp : (n_p, d),
    xq : (n_q, d) float64 features the cost was built from; w : (k_p, k_q)
    label distances or None. ``rule(grad)`` returns the weights ``G`` on the
    squared distances (so that dL/dxp = Σ_j G_ij·2(xp_i − xq_j)) and dL/dW.
    """
    tracked = [t for t in (xp, xq, w) if t is not None]
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in tracked):
        return value
    return _Linearised.apply(xp, xq, w, value, rule)
