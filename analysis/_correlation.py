"""Does OTDD predict the score? Rank and linear correlations per task and pooled within tasks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._load import OTDD_REDUCTION, factor_columns
from analysis._rank import (
    dense_codes,
    kendall_rows,
    pearson_rows,
    spearman_rows,
    weighted_spearman,
    within_center,
    within_ranks,
)
from analysis._resampling import (
    RandomState,
    adjust_pvalues,
    as_generator,
    correction_name,
    permutation_null,
    pvalue_from_null,
)
from harness import contract

__all__ = ["CORRELATION_METHODS", "CorrelationMethod", "correlation_tests", "with_derived_columns"]

_BOOTSTRAP_BATCH_ELEMENTS = 1_000_000


@dataclass(frozen=True)
class _Null:
    """A task's permutation null of the raw statistic (before dividing by its scale)."""

    raw: np.ndarray
    kind: str


Rows = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CorrelationMethod:
    """A correlation statistic: how to prepare the data and compute it row by row within strata.

    ``prepare`` maps ``(n,)`` values to what ``rows`` expects (codes for rank methods); ``rows``
    maps ``X, Y, G`` of shape ``(B, n)`` to ``(B,)`` statistics; ``fixed`` (optional) maps prepared
    ``(n,)`` values and strata to a transform that permutations within strata leave unchanged, so
    a permutation statistic is a dot product; ``resampled`` (optional) builds a faster statistic of
    bootstrap index rows than gathering the data.
    """

    name: str
    effect_type: str
    prepare: Callable[[np.ndarray], np.ndarray]
    rows: Rows
    fixed: Callable[[np.ndarray, np.ndarray], np.ndarray] | None
    resampled: Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]] | None = None

    def of_indices(self, x: np.ndarray, y: np.ndarray, g: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Return a function of bootstrap index rows ``(B, n)`` giving ``(B,)`` statistics on prepared data."""
        if self.resampled is not None:
            return self.resampled(x, y, g)
        return lambda idx: self.rows(x[idx], y[idx], g[idx])


def _identity(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=float)


CORRELATION_METHODS: dict[str, CorrelationMethod] = {
    "spearman": CorrelationMethod("spearman", "spearman_rho", dense_codes, spearman_rows,
                                  lambda v, g: within_ranks(v[None, :], g[None, :])[0], weighted_spearman),
    "pearson": CorrelationMethod("pearson", "pearson_r", _identity, pearson_rows,
                                 lambda v, g: within_center(v[None, :], g[None, :])[0]),
    "kendall": CorrelationMethod("kendall", "kendall_tau_b", _identity, kendall_rows, None),
}
"""Registry of correlation methods by name."""


def _method(name: str) -> CorrelationMethod:
    try:
        return CORRELATION_METHODS[name]
    except KeyError:
        raise AnalysisError(f"unknown correlation method {name!r}; "
                            f"expected one of {sorted(CORRELATION_METHODS)}") from None


def with_derived_columns(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Return ``df`` with ``otdd_reduction = otdd_before - otdd_after`` added when asked for; check columns exist."""
    if OTDD_REDUCTION in columns and OTDD_REDUCTION not in df.columns:
        if not {contract.OTDD_BEFORE, contract.OTDD_AFTER} <= set(df.columns):
            raise AnalysisError(f"{OTDD_REDUCTION} needs columns {contract.OTDD_BEFORE} and {contract.OTDD_AFTER}")
        df = df.assign(**{OTDD_REDUCTION: df[contract.OTDD_BEFORE] - df[contract.OTDD_AFTER]})
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AnalysisError(f"the trials frame has no column(s) {missing}; columns are {list(df.columns)}")
    return df


_AGGREGATES = ("trial", "config", "within")


def dense_strata(g: np.ndarray) -> np.ndarray:
    """Return ``(n,)`` stratum labels renumbered 0..k-1 in order of first appearance."""
    _, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.intp)


def _varies_within(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> bool:
    """Return whether some stratum has two observations with distinct x and distinct y."""
    return any(np.ptp(x[g == k]) > 0 and np.ptp(y[g == k]) > 0 for k in np.unique(g) if (g == k).sum() >= 2)


def _enough(x: np.ndarray, y: np.ndarray) -> bool:
    return x.size >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0


def _statistic(m: CorrelationMethod, x: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
    return float(m.rows(x[None, :], y[None, :], g[None, :])[0])


def _pvalue(m: CorrelationMethod, x: np.ndarray, y: np.ndarray, g: np.ndarray, observed: float,
            n_resamples: int, rng: np.random.Generator, alternative: str,
            parts: Sequence[_Null] | None = None) -> tuple[float, str, _Null | None]:
    """Return ``(p, kind, null)``; ``null`` (raw dot products) is kept for pooling when it is random.

    For a pooled row whose tasks all have random nulls (``parts``), the statistic under
    within-task permutations is the sum of the tasks' raw statistics, so their nulls are summed
    instead of permuting again; each p-value stays valid on its own.
    """
    if m.fixed is not None:
        tx, ty = m.fixed(x, g), m.fixed(y, g)
        scale = math.sqrt(float(tx @ tx) * float(ty @ ty))
        if parts and all(part.kind == "permutation" for part in parts):
            raw = np.sum([part.raw for part in parts], axis=0)
            return pvalue_from_null(raw / scale, observed, "permutation", alternative), "permutation", None
        raw, kind = permutation_null(lambda idx: ty[idx] @ tx, x.size, g, n_resamples=n_resamples, rng=rng)
        p = pvalue_from_null(raw / scale, observed, kind, alternative)
        return p, kind, _Null(raw, kind)

    def stat(idx: np.ndarray) -> np.ndarray:
        b = idx.shape[0]
        return m.rows(np.broadcast_to(x, (b, x.size)), y[idx], np.broadcast_to(g, (b, g.size)))

    null, kind = permutation_null(stat, x.size, g, n_resamples=n_resamples, rng=rng)
    return pvalue_from_null(null, observed, kind, alternative), kind, None


def _bootstrap_ci(m: CorrelationMethod, x: np.ndarray, y: np.ndarray, g: np.ndarray, confidence: float,
                  n_resamples: int, rng: np.random.Generator) -> tuple[float, float, str]:
    of_indices = m.of_indices(x, y, g)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        n = idx.shape[-1]
        return of_indices(idx.reshape(-1, n).astype(np.intp)).reshape(idx.shape[:-1])

    # Resampling observation indices (paired by construction) lets rank statistics reuse one sort.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((np.arange(x.size),), statistic, paired=True, vectorized=True, method="BCa",
                              n_resamples=n_resamples, confidence_level=confidence, rng=rng,
                              batch=max(1, _BOOTSTRAP_BATCH_ELEMENTS // x.size))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    note = f"CI: paired BCa bootstrap, {n_resamples} resamples"
    if not (math.isfinite(low) and math.isfinite(high)):
        note += "; bootstrap degenerate (too few distinct resamples)"
    return low, high, note


def _fisher_ci(r: float, n_eff: int, confidence: float) -> tuple[float, float]:
    if n_eff <= 3 or not math.isfinite(r):
        return math.nan, math.nan
    z = math.atanh(max(min(r, 1 - 1e-15), -1 + 1e-15))
    half = stats.norm.ppf(0.5 + confidence / 2) / math.sqrt(n_eff - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _one(m: CorrelationMethod, x: np.ndarray, y: np.ndarray, g: np.ndarray, *, n_resamples: int,
         rng: np.random.Generator, confidence: float, alternative: str,
         parts: Sequence[_Null] | None = None) -> tuple[dict[str, Any], _Null | None]:
    px, py = m.prepare(x), m.prepare(y)
    observed = _statistic(m, px, py, g)
    p, kind, null = _pvalue(m, px, py, g, observed, n_resamples, rng, alternative, parts)
    n_groups = int(g.max()) + 1
    if m.name == "pearson":
        if n_groups == 1:
            ci = stats.pearsonr(x, y).confidence_interval(confidence_level=confidence)
            low, high = float(ci.low), float(ci.high)
            note = "CI: Fisher z"
        else:
            low, high = _fisher_ci(observed, x.size - (n_groups - 1), confidence)
            note = "CI: Fisher z with n - (tasks - 1)"
    else:
        low, high, note = _bootstrap_ci(m, px, py, g, confidence, n_resamples, rng)
    if n_groups > 1:
        note = f"pooled within {n_groups} groups (ranks/centring and permutations within each); {note}"
    values = {"statistic": observed, "p_val": p, "p_kind": kind, "ci_low": low, "ci_high": high,
              "effect_size": observed, "note": note}
    return values, null


def correlation_tests(
    df: pd.DataFrame,
    x: str = contract.OTDD_AFTER,
    y: str = contract.TEST_SCORE,
    by: str = "task",
    method: str = "spearman",
    aggregate: str = "trial",
    n_resamples: int = 9999,
    random_state: RandomState = None,
    correction: str = "holm",
    *,
    confidence: float = 0.95,
    alternative: str = "two-sided",
    pooled: bool = True,
    config_columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return one correlation row per group of ``by`` plus a pooled ``task == "all"`` row.

    Input: the tidy trials frame of :func:`load_trials` (one row per trial; columns ``by``, ``x``,
    ``y`` and the factor columns). ``x = "otdd_reduction"`` is computed as before - after.
    ``aggregate = "trial"`` uses every trial as one observation; ``"config"`` first averages seeds
    per configuration (``by`` plus ``config_columns``, default the frame's factor columns);
    ``"within"`` keeps the trials but ranks and permutes only within each configuration (a
    seed-level question, "do a configuration's luckier seeds have lower OTDD?", which treats seeds
    of one configuration as exchangeable rather than independent of it).
    p-values come from permutations of ``y`` (within task for the pooled row): exact by enumeration
    when feasible (``p_kind = "exact"``), else ``n_resamples`` random ones (``"permutation"``).
    CIs: paired BCa bootstrap for Spearman and Kendall, Fisher z for Pearson. ``p_adj`` corrects
    over all rows of this call (``correction``: holm or bh). A group with n < 3 or constant x or y
    gets NaN statistics and ``note = "not enough data"``.
    """
    m = _method(method)
    correction_name(correction)
    if aggregate not in _AGGREGATES:
        raise AnalysisError(f"unknown aggregate {aggregate!r}; expected one of {', '.join(map(repr, _AGGREGATES))}")
    if not 0 < confidence < 1:
        raise AnalysisError(f"confidence must be in (0, 1), got {confidence}")
    data = with_derived_columns(df, [by, x, y])
    keys = [c for c in (config_columns if config_columns is not None else factor_columns(df))
            if c in data.columns and c not in (by, "seed", x, y)]
    if aggregate == "config":
        data = (data[[by, *keys, x, y]].dropna(subset=[x, y])
                .groupby([by, *keys], dropna=False, sort=True, observed=True)[[x, y]].mean().reset_index())
    data = data[[by, *keys, x, y]].dropna(subset=[x, y])
    # "within": seeds of one configuration are the units, ranked and permuted only within it.
    strata = (data.groupby([by, *keys], dropna=False, sort=False, observed=True).ngroup().to_numpy(np.intp)
              if aggregate == "within" else np.zeros(len(data), dtype=np.intp))
    rng = as_generator(random_state)
    family = f"correlation {m.name} {x}~{y} ({aggregate})"
    common = {"test": "correlation", "variant": aggregate, "method": m.name, "x": x, "y": y,
              "confidence": confidence, "effect_type": m.effect_type, "alternative": alternative,
              "family": family, "correction": correction_name(correction)}
    rows: list[dict[str, Any]] = []
    usable: list[tuple[np.ndarray, np.ndarray]] = []
    nulls: list[_Null | None] = []
    data = data.assign(_stratum=strata)
    for task, part in data.groupby(by, sort=True):
        xv, yv = part[x].to_numpy(float), part[y].to_numpy(float)
        gv = dense_strata(part["_stratum"].to_numpy(np.intp))
        if not _enough(xv, yv) or (aggregate == "within" and not _varies_within(xv, yv, gv)):
            note = NOT_ENOUGH_DATA + ("" if aggregate != "within" else ": needs a configuration with two seeds "
                                      "whose OTDD and score both differ")
            rows.append(make_row(**common, task=task, n=xv.size, note=note))
            continue
        usable.append((xv, yv, part["_stratum"].to_numpy(np.intp)))
        values, null = _one(m, xv, yv, gv, n_resamples=n_resamples, rng=rng,
                            confidence=confidence, alternative=alternative)
        nulls.append(null)
        rows.append(make_row(**common, task=task, n=xv.size, **values))
    if pooled:
        if len(usable) >= 2:
            xv = np.concatenate([u[0] for u in usable])
            yv = np.concatenate([u[1] for u in usable])
            g = (dense_strata(np.concatenate([u[2] for u in usable])) if aggregate == "within"
                 else np.concatenate([np.full(u[0].size, i, dtype=np.intp) for i, u in enumerate(usable)]))
            parts = [n for n in nulls if n is not None]
            values, _ = _one(m, xv, yv, g, n_resamples=n_resamples, rng=rng, confidence=confidence,
                             alternative=alternative, parts=parts if len(parts) == len(usable) else None)
            rows.append(make_row(**common, task="all", n=xv.size, **values))
        else:
            rows.append(make_row(**common, task="all", n=sum(u[0].size for u in usable),
                                 note=f"{NOT_ENOUGH_DATA}: pooling needs two tasks with enough data"))
    out = results_frame(rows)
    out["p_adj"] = adjust_pvalues(out["p_val"].to_numpy(float), correction)
    return out
