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
from .exact import exact_duals, solve_exact, solve_exact_sparse
from .sinkhorn import sinkhorn, transport_cost_gradient


Candidates = tuple[np.ndarray, np.ndarray]
"""(rows, cols) index arrays of entries whose union carries a feasible plan."""

_SPARSE_FROM = 250_000
"""Exact solves of at least this many entries start from candidate edges when they are given."""


class WarmSlot:
    """The dual potentials of the last converged solve between two labelled sets of a fixed layout.

    A later solve reuses them as its start when both sides still have the
    same class codes (the same sizes and labels in the same order); the
    features may have moved. Kept by :class:`harness.otdd.OTDDSource`, one
    slot per transport problem of a call.
    """

    def __init__(self) -> None:
        self._key: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._potentials: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def get(self, p: LabelledSet, q: LabelledSet) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Return the stored (f (n_p,), g (n_q,)) if they belong to sets laid out like p and q, else None."""
        if self._key is None or self._potentials is None:
            return None
        key_p, key_q = self._key
        same = (key_p.shape == p.codes.shape and key_q.shape == q.codes.shape
                and key_p.device == p.codes.device and key_q.device == q.codes.device
                and bool(torch.equal(key_p, p.codes)) and bool(torch.equal(key_q, q.codes)))
        return self._potentials if same else None

    def put(self, p: LabelledSet, q: LabelledSet, f: torch.Tensor, g: torch.Tensor) -> None:
        """Store the converged potentials f (n_p,), g (n_q,) of a solve between p and q."""
        self._key = (p.codes, q.codes)
        self._potentials = (f.detach(), g.detach())


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
        warm: Optional[WarmSlot] = None,
        candidates: Optional[Candidates] = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return the 0-dim float64 transport value (with autograd edges) and diagnostics.

        w : (k_p, k_q) label distances the (n_p, n_q) ``cost`` was built from.
        ``symmetric`` says that q is p; such calls only happen when ``debiased``.
        ``warm`` holds the potentials of the previous solve of a similar problem
        (a cached source against a changing target); ``candidates`` are entries
        whose union carries a feasible plan (the exact inner method's class-pair
        plans); methods may ignore either.
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
        warm: Optional[WarmSlot] = None,
        candidates: Optional[Candidates] = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return the exact transport cost and diagnostics (solver, class_mass, converged); ``warm`` is unused.

        With ``candidates`` and at least ``_SPARSE_FROM`` entries the network simplex runs on
        a growing edge set priced against its duals (:func:`solve_exact_sparse`), else on the
        dense matrix (or as an assignment when both sides have as many points).
        """
        matrix = cost.detach().cpu().numpy()
        if candidates is not None and not symmetric and matrix.size >= _SPARSE_FROM:
            plan = solve_exact_sparse(matrix, *candidates)
        else:
            plan = solve_exact(matrix)
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

    ``diagnostics["converged"]`` says whether ``tol`` was reached. At ε far
    below the cost range (ε = 0.1 with costs in the hundreds) ε-scaling from a
    flat start plateaus on thousands of points; such solves start from the
    exact OT potentials instead (or from the previous call's, see
    :class:`WarmSlot`), and converge in a few hundred steps.

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
        warm: Optional[WarmSlot] = None,
        candidates: Optional[Candidates] = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Return OT_ε (debiased) or ⟨π_ε, C⟩ and diagnostics (iterations, marginal error, class_mass).

        The start, in order of preference: ``warm``'s potentials (given at most
        ``_WARM_BUDGET`` steps to converge), exact OT potentials when ε is small
        against the cost range (not for symmetric self terms), else ε-scaling
        from a flat start. ``diagnostics["start"]`` says which one produced the result.
        """
        res, start, spent = None, "", 0
        previous = warm.get(p, q) if warm is not None else None
        if previous is not None:
            try:
                res = self._solve(cost, p, q, _feasible(cost, *previous), min(self.max_iter, _WARM_BUDGET))
                start, spent = "warm", res.n_iter
            except RuntimeError:  # the moved features left the old potentials unusable: start afresh
                res = None
            if res is not None and not res.converged:
                res = None
        if res is None:
            init = None if symmetric else _exact_start(cost, self.reg)
            res = self._solve(cost, p, q, init, self.max_iter)
            start = "exact" if init is not None else "cold"
        if warm is not None and res.converged:
            warm.put(p, q, res.f, res.g)
        plan = res.plan
        if self.debiased:
            value = _attach(res.entropic_cost, p, q, w, lambda: plan)
        else:
            eps = self.reg
            value = _attach(res.transport_cost, p, q, w, lambda: transport_cost_gradient(plan, cost, eps))
        diagnostics = {
            "solver": "sinkhorn",
            "converged": res.converged,
            "start": start,
            "n_iter": res.n_iter + (spent if start != "warm" else 0),  # a failed warm attempt counts
            "n_cg": res.n_cg,
            "n_kernel": res.n_kernel,
            "marginal_error": res.marginal_error,
            "transport_cost": res.transport_cost,
            "entropic_cost": res.entropic_cost,
            "class_mass": block_sums(plan, p, q),
        }
        return value, diagnostics


    def _solve(self, cost: torch.Tensor, p: LabelledSet, q: LabelledSet,
               init: Optional[tuple[torch.Tensor, torch.Tensor]], max_iter: int) -> Any:
        return sinkhorn(cost, self.reg, tol=self.tol, max_iter=max_iter, row_groups=p.codes, col_groups=q.codes,
                        init=init)


def _feasible(cost: torch.Tensor, f: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (f, g) with g lowered where needed so that f_i + g_j ≤ C_ij everywhere (no kernel overflow).

    cost : (n, m); f : (n,), g : (m,). Potentials of a previous cost can exceed the
    new one where features moved; each lowered g_j becomes tight at its column's minimum.
    """
    step = max(1, (1 << 22) // max(1, cost.shape[1]))
    bound = torch.stack([(cost[r0 : r0 + step] - f[r0 : r0 + step, None]).amin(0)
                         for r0 in range(0, cost.shape[0], step)]).amin(0)
    return f, torch.minimum(g, bound)


_WARM_BUDGET = 1000
"""Steps a warm start gets to converge before the solve restarts from exact potentials."""

_EXACT_START_BELOW = 1e-2
"""Start Sinkhorn from exact OT potentials when ε is below this fraction of the cost range."""


def _exact_start(cost: torch.Tensor, eps: float) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Return exact OT dual potentials of ``cost`` as a Sinkhorn start, or None (ε large, or no optimum).

    At ε ≪ the cost range the entropic potentials are within O(ε·log n) of
    exact ones, and Sinkhorn's ε-scaling from a flat start stalls there
    (measured: 5,000 × 1,000 points, d = 384, ε = 0.1: cold start stuck at
    an L1 marginal error of 4e-3 after 5,000 steps and 8.6 s; from the
    network simplex's potentials (1.3 s) converged to 7e-5 in 119 steps
    and 0.6 s). Exact potentials are dual feasible (f ⊕ g ≤ C), so the first
    kernel cannot overflow. Symmetric self terms keep the cold start: their
    exact plan is the identity, whose potentials are maximally degenerate.
    """
    lo, hi = float(cost.min()), float(cost.max())
    if eps >= _EXACT_START_BELOW * (hi - lo):
        return None
    duals = exact_duals(cost.detach().cpu().numpy())
    if duals is None:
        return None
    return (torch.as_tensor(duals[0], dtype=cost.dtype, device=cost.device),
            torch.as_tensor(duals[1], dtype=cost.dtype, device=cost.device))


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
