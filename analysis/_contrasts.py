"""One level against a reference: per-seed means, paired (or explicitly unpaired) t, Hedges' g, TOST."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from analysis._resampling import EXACT_LIMIT, sign_flip_pvalue

__all__ = ["Contrast", "compare", "mean_ci", "per_seed", "ordered_levels", "level_text", "spec_levels"]


@dataclass(frozen=True)
class Contrast:
    """The comparison of one level with a reference on per-seed means.

    ``estimate`` is mean(level) - mean(reference) (paired: mean of per-seed differences);
    ``se`` its standard error and ``df`` the t degrees of freedom (behind :meth:`p_beyond`);
    ``ci_low, ci_high`` its t-based CI at ``confidence``; ``p_tost`` the TOST p-value for
    |difference| < margin (NaN without a margin); ``d_z`` = mean difference / SD of differences
    (paired only); ``p_perm`` the sign-flip (paired) or label (unpaired) permutation p-value.
    """

    variant: str
    n: int
    estimate: float
    se: float
    statistic: float
    df: float
    p_val: float
    ci_low: float
    ci_high: float
    effect_size: float
    effect_type: str
    d_z: float
    p_perm: float
    p_tost: float
    note: str

    def p_beyond(self, bound: float, side: str) -> float:
        """Return the one-sided t p-value for ``estimate > bound`` (side "greater") or ``< bound`` ("less")."""
        if not self.se > 0:
            shown = self.estimate > bound if side == "greater" else self.estimate < bound
            return 0.0 if shown else 1.0
        z = (self.estimate - bound) / self.se
        return float(stats.t.sf(z, self.df) if side == "greater" else stats.t.cdf(z, self.df))

    def as_row(self) -> dict[str, Any]:
        """Return the fields that map onto result columns."""
        return {"variant": self.variant, "n": self.n, "estimate": self.estimate, "statistic": self.statistic,
                "df": self.df, "p_val": self.p_val, "p_kind": "t", "ci_low": self.ci_low, "ci_high": self.ci_high,
                "effect_size": self.effect_size, "effect_type": self.effect_type, "p_perm": self.p_perm,
                "note": self.note}


def level_text(value: Any) -> str:
    """Return a factor level as text (``True``, ``0``, ``cifar``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def spec_levels(spec: Mapping[str, Any], factor: str) -> list[Any] | None:
    """Return the levels the spec declares for ``factor`` (``{"factors": {path: [levels]}}`` or a list of
    ``{"path"|"name": ..., "levels"|"values": [...]}``), or None when it declares none."""
    factors = spec.get("factors") if isinstance(spec, Mapping) else None
    if isinstance(factors, Mapping):
        levels = factors.get(factor)
        if isinstance(levels, Mapping):
            levels = levels.get("levels", levels.get("values"))
        return list(levels) if isinstance(levels, (list, tuple)) else None
    if isinstance(factors, list):
        for item in factors:
            if isinstance(item, Mapping) and factor in (item.get("path"), item.get("name")):
                levels = item.get("levels", item.get("values"))
                return list(levels) if isinstance(levels, (list, tuple)) else None
    return None


def ordered_levels(values: Iterable[Any], declared: list[Any] | None = None) -> list[Any]:
    """Return the distinct levels: in the declared order when given, else sorted (numbers numerically)."""
    present = list(dict.fromkeys(v for v in values if not (isinstance(v, float) and math.isnan(v))))
    if declared:
        texts = [level_text(d) for d in declared]
        first = [v for t in texts for v in present if level_text(v) == t]
        return list(dict.fromkeys(first + [v for v in present if v not in first]))
    try:
        return sorted(present)
    except TypeError:
        return sorted(present, key=level_text)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Return (mean, low, high): the mean of the finite ``values`` ``(n,)`` with its t interval (NaN below 2)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return mean, mean - half, mean + half


def per_seed(part: pd.DataFrame, factor: str, y: str) -> pd.DataFrame:
    """Return a seeds × levels table of mean ``y``, other factors averaged within each (level, seed).

    Input: trials-frame rows of one task with columns ``seed``, ``factor`` and ``y``.
    """
    data = part[[factor, "seed", y]].dropna(subset=[y])
    return data.groupby(["seed", factor], observed=True)[y].mean().unstack(factor)


def _label_permutation_pvalue(a: np.ndarray, b: np.ndarray, n_resamples: int,
                              rng: np.random.Generator) -> tuple[float, str]:
    pooled = np.concatenate([a, b])
    n, k = pooled.size, a.size
    observed = abs(a.mean() - b.mean())
    tol = 1e-12 * max(1.0, observed)
    total = math.comb(n, k)
    if total <= max(n_resamples, EXACT_LIMIT):
        masks = np.zeros((total, n), dtype=bool)
        for i, chosen in enumerate(itertools.combinations(range(n), k)):
            masks[i, list(chosen)] = True
        diff = (masks @ pooled) / k - (~masks @ pooled) / (n - k)
        return float(np.count_nonzero(np.abs(diff) >= observed - tol)) / total, "exact"
    perms = rng.permuted(np.broadcast_to(pooled, (n_resamples, n)), axis=1)
    diff = perms[:, :k].mean(axis=1) - perms[:, k:].mean(axis=1)
    return (np.count_nonzero(np.abs(diff) >= observed - tol) + 1) / (n_resamples + 1), "permutation"


def _hedges_j(df: float) -> float:
    # Small-sample correction J(df) = 1 - 3 / (4 df - 1) (Hedges & Olkin 1985; Borenstein et al. 2009).
    return 1.0 - 3.0 / (4.0 * df - 1.0) if df > 0.25 else math.nan


def _paired(a: np.ndarray, b: np.ndarray, confidence: float, margin: float | None, n_resamples: int,
            rng: np.random.Generator, note: str) -> Contrast:
    d = a - b
    n = d.size
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd > 1e-12 * max(1.0, abs(mean)):
        res = stats.ttest_rel(a, b)
        ci = res.confidence_interval(confidence_level=confidence)
        t, p = float(res.statistic), float(res.pvalue)
        lo, hi = float(ci.low), float(ci.high)
        p_tost = float(ttost_paired(a, b, -margin, margin)[0]) if margin is not None else math.nan
        d_z = mean / sd
    else:
        # Every seed moved by the same amount: the t statistic is infinite (or 0/0); use its limits.
        t = math.copysign(math.inf, mean) if mean != 0 else math.nan
        p = 1.0 if mean == 0 else 0.0
        lo = hi = mean
        p_tost = (0.0 if abs(mean) < margin else 1.0) if margin is not None else math.nan
        d_z = math.copysign(math.inf, mean) if mean != 0 else math.nan
        note = "; ".join(filter(None, [note, "identical difference on every seed (zero variance)"]))
    sd_av = (float(a.std(ddof=1)) + float(b.std(ddof=1))) / 2
    g_av = mean / sd_av * _hedges_j(n - 1) if sd_av > 0 else math.nan
    p_perm, kind = sign_flip_pvalue(d, n_resamples=n_resamples, rng=rng)
    note = "; ".join(filter(None, [note, f"sign-flip p is {kind}"]))
    se = sd / math.sqrt(n)
    return Contrast("paired", n, mean, se, t, n - 1.0, p, lo, hi, g_av, "hedges_g_av", d_z, p_perm, p_tost, note)


def _unpaired(a: np.ndarray, b: np.ndarray, confidence: float, margin: float | None, n_resamples: int,
              rng: np.random.Generator, note: str) -> Contrast:
    mean = float(a.mean() - b.mean())
    n1, n2 = a.size, b.size
    res = stats.ttest_ind(a, b, equal_var=False)
    if np.isfinite(res.statistic):
        ci = res.confidence_interval(confidence_level=confidence)
        t, p, dof = float(res.statistic), float(res.pvalue), float(res.df)
        lo, hi = float(ci.low), float(ci.high)
        p_tost = (float(ttost_ind(a, b, -margin, margin, usevar="unequal")[0])
                  if margin is not None else math.nan)
    else:
        t, p, dof = (math.copysign(math.inf, mean) if mean else math.nan), (0.0 if mean else 1.0), n1 + n2 - 2.0
        lo = hi = mean
        p_tost = (0.0 if abs(mean) < margin else 1.0) if margin is not None else math.nan
    pooled_var = ((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2)
    g = mean / math.sqrt(pooled_var) * _hedges_j(n1 + n2 - 2) if pooled_var > 0 else math.nan
    p_perm, kind = _label_permutation_pvalue(a, b, n_resamples, rng)
    note = "; ".join(filter(None, [note, "Welch t", f"label-permutation p is {kind}"]))
    se = math.sqrt(a.var(ddof=1) / n1 + b.var(ddof=1) / n2)
    return Contrast("unpaired", n1 + n2, mean, se, t, dof, p, lo, hi, g, "hedges_g", math.nan, p_perm, p_tost, note)


def compare(level: pd.Series, reference: pd.Series, *, confidence: float = 0.95, margin: float | None = None,
            n_resamples: int = 9999, rng: np.random.Generator) -> Contrast | None:
    """Return the contrast of per-seed means ``level`` against ``reference`` (both indexed by seed).

    Paired on the seeds both have when at least two are shared (seeds only one side has are
    dropped, and the note says how many); otherwise an explicitly unpaired Welch comparison.
    Returns None when neither design has at least two observations a side.
    """
    level, reference = level.dropna(), reference.dropna()
    shared = level.index.intersection(reference.index)
    if shared.size >= 2:
        dropped = level.index.size + reference.index.size - 2 * shared.size
        note = f"{dropped} unshared seed(s) dropped" if dropped else ""
        return _paired(level[shared].to_numpy(float), reference[shared].to_numpy(float), confidence, margin,
                       n_resamples, rng, note)
    if level.size >= 2 and reference.size >= 2:
        return _unpaired(level.to_numpy(float), reference.to_numpy(float), confidence, margin, n_resamples, rng,
                         "seeds not shared between levels: unpaired")
    return None
