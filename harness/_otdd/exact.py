"""Exact optimal transport between uniformly weighted point sets.

Two exact solvers, chosen by shape: with as many points on both sides a
uniform transport problem is an assignment problem (Birkhoff), solved by
scipy's ``linear_sum_assignment`` in memory of the cost matrix alone; otherwise
POT's network simplex with an iteration limit that scales with the problem
(POT's default of 1e5 pivots stops short of the optimum from a few hundred
points per side on).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

_OPTIMAL = 1  # POT's result code for an optimal solve


@dataclass(frozen=True)
class ExactPlan:
    """An optimal uniform-weight plan as its nonzero entries.

    rows, cols : (nnz,) int64 arrays; vals : (nnz,) float64 masses summing to 1;
    value : the optimal cost Σ vals·C[rows, cols]; solver : which solver ran.
    """

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    value: float
    solver: str


def network_simplex_iterations(n: int, m: int) -> int:
    """Return the pivot limit used for an (n, m) network simplex solve."""
    return max(100_000, 100 * n * m)


def solve_exact(cost: np.ndarray) -> ExactPlan:
    """Return the optimal plan between uniform weights for an (n, m) float64 cost."""
    n, m = cost.shape
    if n == m:
        rows, cols = linear_sum_assignment(cost)
        vals = np.full(n, 1.0 / n)
        return ExactPlan(
            rows.astype(np.int64), cols.astype(np.int64), vals, float(cost[rows, cols].sum() / n), "assignment"
        )
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    plan, log = ot.emd(
        np.full(n, 1.0 / n), np.full(m, 1.0 / m), cost, numItermax=network_simplex_iterations(n, m), log=True
    )
    if log["result_code"] != _OPTIMAL:
        raise RuntimeError(f"network simplex on a {n}x{m} problem did not reach the optimum: {log['warning']}")
    rows, cols = np.nonzero(plan)
    vals = plan[rows, cols]
    return ExactPlan(rows.astype(np.int64), cols.astype(np.int64), vals, float(vals @ cost[rows, cols]), "network_simplex")


def solve_blocks(
    d2: np.ndarray,
    p_offsets: np.ndarray,
    q_offsets: np.ndarray,
    pairs: Sequence[tuple[int, int]],
) -> list[ExactPlan]:
    """Return the exact plan of each class block (a, b) of ``d2`` with global indices.

    d2 : (n_p, n_q) float64 array; block (a, b) is rows ``p_offsets[a]:p_offsets[a+1]``
    and columns ``q_offsets[b]:q_offsets[b+1]``. Blocks are solved on a thread
    pool of ``torch.get_num_threads()`` workers (both solvers release the GIL).
    """

    def one(pair: tuple[int, int]) -> ExactPlan:
        a, b = pair
        r0, c0 = int(p_offsets[a]), int(q_offsets[b])
        block = np.ascontiguousarray(d2[r0 : int(p_offsets[a + 1]), c0 : int(q_offsets[b + 1])])
        plan = solve_exact(block)
        return ExactPlan(plan.rows + r0, plan.cols + c0, plan.vals, plan.value, plan.solver)

    workers = min(len(pairs), max(1, torch.get_num_threads()))
    if workers <= 1:
        return [one(pair) for pair in pairs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, pairs))
