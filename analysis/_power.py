"""How many seeds would detect the observed effects? Paired t power per contrast."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._contrasts import compare, level_text, per_seed
from analysis._factors import resolve_levels
from analysis._resampling import as_generator
from harness import contract

__all__ = ["rule_power", "rule_seeds_needed", "seeds_needed"]


_MAX_SEEDS = 10**7


def _power_at(engine: TTestPower | TTestIndPower, effect: float, n: float, alpha: float) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.squeeze(engine.power(effect_size=effect, nobs1=n, alpha=alpha, alternative="two-sided")
                                if isinstance(engine, TTestIndPower) else
                                engine.power(effect_size=effect, nobs=n, alpha=alpha, alternative="two-sided")))


def _solve(effect: float, alpha: float, power: float, paired: bool) -> float:
    """Return the smallest whole number of seeds (≥ 2) with at least ``power``; NaN beyond 10**7."""
    engine = TTestPower() if paired else TTestIndPower()
    effect = abs(effect)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            n = float(np.squeeze(engine.solve_power(effect_size=effect, alpha=alpha, power=power,
                                                    alternative="two-sided")))
        except (ValueError, RuntimeError, ZeroDivisionError):
            n = math.nan
    if math.isfinite(n) and n >= 2 and _power_at(engine, effect, math.ceil(n), alpha) >= power - 1e-9:
        return float(math.ceil(n))
    # solve_power fails for very large or very small effects; power rises with n, so bisect on it.
    lo, hi = 2, 2
    while _power_at(engine, effect, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > _MAX_SEEDS:
            return math.nan
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if _power_at(engine, effect, mid, alpha) < power else (lo, mid)
    return float(lo)


def seeds_needed(
    df: pd.DataFrame,
    factor: str,
    *,
    reference: Any = None,
    y: str = contract.TEST_SCORE,
    by: str = "task",
    power: float = 0.8,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Return one ``power`` row per (task, level ≠ reference): seeds needed to detect the observed effect.

    Input: the tidy trials frame of :func:`load_trials` (columns ``by``, ``seed``, ``factor``, ``y``).
    Per-seed means are compared as in :func:`factor_tests`. Paired designs use the paired t power
    (``TTestPower().solve_power``) with the observed ``d_z`` = mean difference / SD of differences
    and report seeds; unpaired ones use ``TTestIndPower`` with Hedges' g and report seeds per level.
    ``underpowered`` is True when the study has fewer seeds than ``n_needed``. A zero effect needs
    infinitely many seeds: NaN with a note; a difference identical on every seed needs 2.
    """
    if not (0 < power < 1 and 0 < alpha < 1):
        raise AnalysisError(f"power and alpha must be in (0, 1); got power={power}, alpha={alpha}")
    levels, ref = resolve_levels(df, factor, reference)
    rows: list[dict[str, Any]] = []
    rng = as_generator(0)  # the permutation p of compare() is unused here
    for task, part in df.dropna(subset=[y]).groupby(by, sort=True):
        table = per_seed(part, factor, y)
        table.columns = [level_text(c) for c in table.columns]
        for level in levels:
            if level_text(level) == level_text(ref) or level_text(level) not in table.columns:
                continue
            base = {"test": "power", "task": task, "factor": factor, "level": level_text(level),
                    "reference": level_text(ref), "y": y, "power": power, "alternative": "two-sided",
                    "method": f"paired t power (statsmodels TTestPower), alpha={alpha:g}"}
            result = (compare(table[level_text(level)], table[level_text(ref)], n_resamples=1, rng=rng)
                      if level_text(ref) in table.columns else None)
            if result is None:
                rows.append(make_row(**base, note=f"{NOT_ENOUGH_DATA}: fewer than two seeds a level"))
                continue
            paired = result.variant == "paired"
            effect = result.d_z if paired else result.effect_size
            n_have = result.n if paired else min(table[level_text(level)].notna().sum(),
                                                  table[level_text(ref)].notna().sum())
            values: dict[str, Any] = {"variant": result.variant, "n": n_have, "estimate": result.estimate,
                                      "effect_size": effect, "effect_type": "d_z" if paired else "hedges_g"}
            if not paired:
                values["method"] = f"two-sample t power (statsmodels TTestIndPower), alpha={alpha:g}, seeds per level"
            if not math.isfinite(effect) and not math.isnan(effect):
                needed, note = 2.0, "no seed-to-seed variation in the difference"
            elif math.isnan(effect) or effect == 0:
                needed, note = math.nan, "effect is zero: no number of seeds detects it"
            else:
                needed, note = _solve(effect, alpha, power, paired), ""
            rows.append(make_row(**base, **values, n_needed=needed if math.isfinite(needed) else None,
                                 underpowered=(n_have < needed) if math.isfinite(needed) else None, note=note))
    return results_frame(rows)


_ONE_SIDED_KINDS = ("no_gain", "not_worse", "helps")
_MAX_RULE_SEEDS = 100_000


def rule_power(kind: str, n: np.ndarray, sd: float, margin: float, alpha: float) -> np.ndarray:
    """Return the power of a hypothesis's own test with ``n`` seeds (array) at the planning effect.

    The planning effect is D = 0 for no_change, no_gain and not_worse, D = 2 m for helps; each
    one-sided bound is then m from the truth, so its power is the noncentral t tail with
    noncentrality m sqrt(n) / sd. TOST (no_change) needs both bounds: power = 2 P(one) - 1
    (exact for the symmetric case up to the joint tail, which is negligible where power matters).
    """
    n = np.asarray(n, dtype=float)
    df = n - 1
    nc = margin * np.sqrt(n) / sd
    one = stats.nct.sf(stats.t.ppf(1 - alpha, df), df, nc)
    if kind == "no_change":
        return np.clip(2 * one - 1, 0, 1)
    if kind in _ONE_SIDED_KINDS:
        return one
    raise AnalysisError(f"no power rule for kind {kind!r}; expected no_change or one of {list(_ONE_SIDED_KINDS)}")


def rule_seeds_needed(kind: str, sd: float, margin: float, alpha: float, power: float = 0.8) -> float:
    """Return the seeds a hypothesis's own test needs for ``power`` at the observed SD of differences.

    See :func:`rule_power` for the planning effect; NaN when the SD is not positive and finite or
    more than 100,000 seeds would be needed.
    """
    if not (math.isfinite(sd) and sd > 0 and margin > 0):
        return math.nan
    hi = 2
    while hi <= _MAX_RULE_SEEDS:
        grid = np.arange(max(2, hi // 2), hi * 2 + 1)
        ok = np.nonzero(rule_power(kind, grid, sd, margin, alpha) >= power)[0]
        if ok.size:
            return float(grid[ok[0]])
        hi *= 4
    return math.nan
