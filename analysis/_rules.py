"""The verdict rules of a hypothesis, vectorised: per-seed differences in, p of "shown" and verdicts out.

Every function takes arrays with a leading batch shape ``(...)`` so that one call decides a whole
simulation (the calibration tests) or one real contrast (shape ``()``). Differences are oriented
so that positive is better; ``m`` is the margin on their scale. "Shown" means a one-sided t bound
at ``alpha`` on the per-seed paired differences.

| kind | supported when | contradicted when |
|---|---|---|
| no_change | TOST shows abs(D) < m | the (1 - alpha) CI lies wholly beyond +m or wholly beyond -m |
| no_gain | D < m is shown | D > m is shown |
| not_worse | D > -m is shown | D < -m is shown |
| helps | D > m is shown | D < m is shown |

``predicts`` and ``no_prediction`` follow the ``helps`` and ``no_gain`` rules on a rank
correlation (Fisher z with the Bonett-Wright variance), with m = ``rho_weak``.
Across tasks (and across the levels of ``levels: each``): supported only when every unit supports
(intersection-union: p = max), contradicted when any unit contradicts after Holm (p = n min).
``levels: some`` is the mirror (supported after Holm over levels; contradicted when all contradict).
``across: k``: the Bonferroni partial-conjunction p, (n - k + 1) p_(k), for both directions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "CONTRADICTED",
    "INCONCLUSIVE",
    "KINDS",
    "NOT_EVALUATED",
    "SUPPORTED",
    "VERDICTS",
    "PairedStats",
    "Shown",
    "all_of",
    "across_all",
    "across_k",
    "correlation_shown",
    "degenerate_note",
    "levels_some",
    "min_exact_p",
    "paired_stats",
    "shown",
    "verdict_of",
]

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_EVALUATED = "not evaluated"
VERDICTS: tuple[str, ...] = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED)

KINDS = ("no_change", "no_gain", "not_worse", "helps", "predicts", "no_prediction")
"""Every hypothesis kind of a spec's ``hypotheses:`` (``all_of`` is a conjunction, not a kind)."""

_CONTRASTS = ("no_change", "no_gain", "not_worse", "helps")


@dataclass(frozen=True)
class PairedStats:
    """Mean, standard error and t degrees of freedom of per-seed differences; arrays of batch shape."""

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    n: np.ndarray

    def ci(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Return the two-sided ``(1 - alpha)`` t interval ``(low, high)``."""
        with np.errstate(invalid="ignore"):
            half = stats.t.ppf(1 - alpha / 2, self.df) * self.se
        return self.estimate - half, self.estimate + half


@dataclass(frozen=True)
class Shown:
    """p-values of the two directions of a rule: ``support`` < alpha supports, ``contra`` < alpha contradicts."""

    support: np.ndarray
    contra: np.ndarray


def paired_stats(d: np.ndarray) -> PairedStats:
    """Return the t summary of differences ``d`` of shape ``(..., n)`` (NaN entries are missing seeds)."""
    d = np.asarray(d, dtype=float)
    n = np.sum(np.isfinite(d), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fewer than two seeds: NaN SD, reported as a note
        mean = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=-1) if d.shape[-1] else np.full(n.shape, np.nan)
        sd = np.nanstd(np.where(np.isfinite(d), d, np.nan), axis=-1, ddof=1)
        se = sd / np.sqrt(n)
    return PairedStats(np.asarray(mean), np.asarray(se), np.asarray(n - 1.0), np.asarray(n))


def _above(s: PairedStats, bound: float) -> np.ndarray:
    """p of "D > bound is shown": the one-sided t p-value of H0: D <= bound."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(stats.t.sf((s.estimate - bound) / s.se, s.df))


def _below(s: PairedStats, bound: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(stats.t.cdf((s.estimate - bound) / s.se, s.df))


def _no_change(s: PairedStats, m: float) -> Shown:
    tost = np.maximum(_above(s, -m), _below(s, m))
    beyond = np.minimum(2 * np.minimum(_above(s, m), _below(s, -m)), 1.0)  # alpha / 2 per side
    return Shown(tost, beyond)


_RULES: dict[str, Callable[[PairedStats, float], Shown]] = {
    "no_change": _no_change,
    "no_gain": lambda s, m: Shown(_below(s, m), _above(s, m)),
    "not_worse": lambda s, m: Shown(_above(s, -m), _below(s, -m)),
    "helps": lambda s, m: Shown(_above(s, m), _below(s, m)),
}


def shown(kind: str, s: PairedStats, margin: float) -> Shown:
    """Return the support and contradiction p-values of a contrast ``kind`` on paired statistics ``s``."""
    if kind not in _RULES:
        raise ValueError(f"unknown contrast kind {kind!r}; expected one of {list(_RULES)}")
    return _RULES[kind](s, margin)


def correlation_shown(kind: str, rho: np.ndarray, n: np.ndarray, rho_weak: float, n_strata: int = 1) -> Shown:
    """Return support / contradiction p of ``predicts`` (rho > rho_weak) or ``no_prediction`` (rho < rho_weak).

    ``rho``: oriented Spearman correlation (positive = x predicts a better score) of ``n``
    configurations in ``n_strata`` within-task strata; Fisher z with the Bonett-Wright variance
    (1 + rho^2 / 2) / (n - n_strata - 2).
    """
    rho = np.clip(np.asarray(rho, dtype=float), -0.999999, 0.999999)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt((1 + rho**2 / 2) / (np.asarray(n, dtype=float) - n_strata - 2))
        z = (np.arctanh(rho) - math.atanh(rho_weak)) / se
    above, below = np.asarray(stats.norm.sf(z)), np.asarray(stats.norm.cdf(z))
    if kind == "predicts":
        return Shown(above, below)
    if kind == "no_prediction":
        return Shown(below, above)
    raise ValueError(f"unknown correlation kind {kind!r}; expected predicts or no_prediction")


def verdict_of(p: Shown, alpha: float) -> np.ndarray:
    """Return the verdicts (array of str) of ``p``: supported, contradicted, inconclusive, or not evaluated (NaN)."""
    support, contra = np.asarray(p.support, float), np.asarray(p.contra, float)
    out = np.full(support.shape, INCONCLUSIVE, dtype=object)
    out[contra < alpha] = CONTRADICTED
    out[support < alpha] = SUPPORTED  # both at once is impossible when alpha < 0.5
    out[~(np.isfinite(support) & np.isfinite(contra))] = NOT_EVALUATED
    return out


def _finite_count(p: np.ndarray) -> np.ndarray:
    return np.sum(np.isfinite(p), axis=-1)


def across_all(p: Shown) -> Shown:
    """Combine units on the last axis (tasks, or levels of ``levels: each``); NaN units are not evaluated.

    Supported p: max over units (intersection-union); contradicted p: Holm's first step, n min p.
    """
    support, contra = np.asarray(p.support, float), np.asarray(p.contra, float)
    n = _finite_count(support)
    with np.errstate(invalid="ignore"):
        sup = np.where(n > 0, np.nanmax(np.where(np.isfinite(support), support, -np.inf), axis=-1), np.nan)
        con = np.where(n > 0, np.minimum(n * np.nanmin(np.where(np.isfinite(contra), contra, np.inf), axis=-1),
                                         1.0), np.nan)
    return Shown(sup, con)


def levels_some(p: Shown) -> Shown:
    """Combine levels of ``levels: some``: supported after Holm over the levels, contradicted when all contradict."""
    flipped = across_all(Shown(p.contra, p.support))
    return Shown(flipped.contra, flipped.support)


def across_k(p: Shown, k: int) -> Shown:
    """Combine tasks on the last axis with ``across: k``: Bonferroni partial conjunction (n - k + 1) p_(k).

    NaN when fewer than ``k`` tasks were evaluated.
    """

    def pc(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, float)
        n = _finite_count(values)
        ordered = np.sort(np.where(np.isfinite(values), values, np.inf), axis=-1)
        kth = ordered[..., k - 1] if ordered.shape[-1] >= k else np.full(n.shape, np.inf)
        with np.errstate(invalid="ignore"):
            return np.where(n >= k, np.minimum((n - k + 1) * kth, 1.0), np.nan)

    return Shown(pc(p.support), pc(p.contra))


def all_of(parts: list[Shown]) -> Shown:
    """Return the conjunction of hypotheses: supported when all are, contradicted when any is (Holm)."""
    stacked = Shown(np.stack([np.asarray(q.support, float) for q in parts], axis=-1),
                    np.stack([np.asarray(q.contra, float) for q in parts], axis=-1))
    missing = ~np.all(np.isfinite(stacked.support), axis=-1)
    out = across_all(stacked)
    return Shown(np.where(missing, np.nan, out.support), np.where(missing, np.nan, out.contra))


def degenerate_note(d: np.ndarray, *, min_n: int = 3) -> str:
    """Return why differences ``d`` (shape ``(n,)``) cannot be tested, or ``""`` when they can."""
    d = np.asarray(d, dtype=float)
    if np.any(np.isinf(d)):
        return "not evaluated: a score is infinite"
    finite = d[np.isfinite(d)]
    if finite.size < min_n:
        return f"not evaluated: {finite.size} seed(s) with both levels; needs at least {min_n}"
    if np.ptp(finite) <= 1e-12 * max(1.0, float(np.max(np.abs(finite)))):
        return ("not evaluated: the difference is identical on every seed (zero variance), "
                "so no t bound exists; a constant or collapsed score is not evidence")
    return ""


def min_exact_p(n: int) -> float:
    """Return the smallest attainable two-sided exact permutation p of a rank correlation of ``n`` points."""
    return 2.0 / math.factorial(n) if n >= 2 else 1.0
