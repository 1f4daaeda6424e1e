"""The outer transport problem of OTDD, one registry entry per method.

Each method turns a built cost matrix ``C = ½‖x − x'‖² + ½·W[y, y']`` into a
differentiable scalar plus diagnostics. The debiasing of a Sinkhorn
divergence is composed by the caller from a method's ``cross`` and ``self``
values.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

import numpy as np
import torch

from .chain import SparseWeights, Weights, block_sums, linearised
from .data import LabelledSet
from .exact import solve_exact
from .sinkhorn import sinkhorn, transport_cost_gradient


class OuterMethod(Protocol):
    """A solver of the outer problem."""

    name: str
    debiased: bool

    def transport(
        self,
        p: LabelledSet,
        q: LabelledSet,
        w: torch.Tensor,
        cost: torch.Tensor,
        *,
        symmetric: bool = False,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return the 0-dim float64 transport value (with autograd edges) and diagnostics.

        w : (k_p, k_q) label distances the (n_p, n_q) ``cost`` was built from.
        ``symmetric`` says that q is p; such calls only happen when ``debiased``.
        """
        ...


def _attach(
    value: float,
    p: LabelledSet,
    q: LabelledSet,
    w: torch.Tensor,
    cost_grad: Callable[[], Weights],
) -> torch.Tensor:
    """Return ``value`` as a tensor whose gradient is dL/dC = ``cost_grad()`` chained through C."""

    def rule(grad: torch.Tensor) -> tuple[Weights, torch.Tensor]:
        g = cost_grad()
        g = g.scaled(0.5 * grad) if isinstance(g, SparseWeights) else g * (0.5 * grad)
        # C = ½·D + ½·W[y, y']: the D weights are ½G, the W gradient ½ΣG over blocks.
        return g, block_sums(g, p, q)

    out = torch.tensor(value, dtype=torch.float64, device=p.x.device)
    return linearised(out, p.x, q.x, w, rule)


class ExactOuter:
    """Exact OT: assignment when n_s = n_t, else POT's network simplex run to optimality.

    Returns the optimal transport cost min_π ⟨π, C⟩; its gradient is the
    optimal plan held fixed (envelope theorem).
    """

    name = "emd"

    def __init__(self, *, reg: float, debiased: bool, tol: float, max_iter: int) -> None:
        if debiased:
            raise ValueError("debiased=True needs outer='sinkhorn' (an exact self-transport cost is zero)")
        self.debiased = False

    def transport(
        self,
        p: LabelledSet,
        q: LabelledSet,
        w: torch.Tensor,
        cost: torch.Tensor,
        *,
        symmetric: bool = False,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return the exact transport cost and diagnostics (solver, class_mass, converged)."""
        plan = solve_exact(cost.detach().cpu().numpy())
        device = p.x.device
        weights = SparseWeights(
            torch.as_tensor(plan.rows, device=device),
            torch.as_tensor(plan.cols, device=device),
            torch.as_tensor(plan.vals, device=device),
        )
        value = _attach(plan.value, p, q, w, lambda: weights)
        diagnostics = {
            "solver": plan.solver,
            "converged": True,
            "transport_cost": plan.value,
            "class_mass": block_sums(weights, p, q),
        }
        return value, diagnostics


class SinkhornOuter:
    """Entropic OT at ``reg`` = ε, run until the L1 marginal error is below ``tol`` (or ``max_iter`` steps).

    ``diagnostics["converged"]`` says whether ``tol`` was reached: at ε = 0.1
    on thousands of points per side with costs in the thousands the
    iteration can plateau (see :mod:`.sinkhorn`).

    Not debiased: returns the transport cost ⟨π_ε, C⟩ of the entropic plan
    (within about ε·log n of the exact value and converging to it as ε → 0),
    differentiated exactly by implicit differentiation of the plan. Debiased:
    ``transport`` returns OT_ε = ⟨π_ε, C⟩ + ε·KL(π_ε | a⊗b) (the dual value),
    whose gradient is π_ε (envelope theorem), and the caller forms the
    Sinkhorn divergence S = OT_ε(a, b) − ½OT_ε(a, a) − ½OT_ε(b, b).
    """

    name = "sinkhorn"

    def __init__(self, *, reg: float, debiased: bool, tol: float, max_iter: int) -> None:
        if not (isinstance(reg, (int, float)) and np.isfinite(reg) and reg > 0):
            raise ValueError(f"reg must be a positive finite number for outer='sinkhorn', got {reg!r}")
        if not (tol > 0):
            raise ValueError(f"tol must be positive, got {tol!r}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {max_iter!r}")
        self.reg = float(reg)
        self.debiased = bool(debiased)
        self.tol = float(tol)
        self.max_iter = int(max_iter)

    def transport(
        self,
        p: LabelledSet,
        q: LabelledSet,
        w: torch.Tensor,
        cost: torch.Tensor,
        *,
        symmetric: bool = False,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return OT_ε (debiased) or ⟨π_ε, C⟩ and diagnostics (iterations, marginal error, class_mass)."""
        res = sinkhorn(cost, self.reg, tol=self.tol, max_iter=self.max_iter, row_groups=p.codes, col_groups=q.codes)
        plan = res.plan
        if self.debiased:
            value = _attach(res.entropic_cost, p, q, w, lambda: plan)
        else:
            eps = self.reg
            value = _attach(res.transport_cost, p, q, w, lambda: transport_cost_gradient(plan, cost, eps))
        diagnostics = {
            "solver": "sinkhorn",
            "converged": res.converged,
            "n_iter": res.n_iter,
            "n_cg": res.n_cg,
            "n_kernel": res.n_kernel,
            "marginal_error": res.marginal_error,
            "transport_cost": res.transport_cost,
            "entropic_cost": res.entropic_cost,
            "class_mass": block_sums(plan, p, q),
        }
        return value, diagnostics


OUTER_METHODS: dict[str, type] = {"emd": ExactOuter, "sinkhorn": SinkhornOuter}
"""Registry of outer solvers by name; each is built with (reg, debiased, tol, max_iter)."""


def make_outer(name: str, *, reg: float, debiased: bool, tol: float, max_iter: int) -> OuterMethod:
    """Return the configured outer solver ``name``; ``ValueError`` lists the choices otherwise."""
    try:
        cls = OUTER_METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown outer method {name!r}; expected one of {sorted(OUTER_METHODS)}") from None
    outer: OuterMethod = cls(reg=reg, debiased=debiased, tol=tol, max_iter=max_iter)
    return outer
