"""Permutation p-values (exact by enumeration when feasible), seeded generators, p-value corrections."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
from statsmodels.stats.multitest import multipletests

__all__ = [
    "RandomState",
    "EXACT_LIMIT",
    "as_generator",
    "adjust_pvalues",
    "permutation_null",
    "pvalue_from_null",
    "sign_flip_pvalue",
]

RandomState = int | np.random.Generator | None
"""An int seed, a NumPy Generator, or None (fresh entropy) — accepted by every resampling function."""

EXACT_LIMIT = math.factorial(8)
"""Enumerate every permutation when there are at most max(n_resamples, EXACT_LIMIT) of them."""

_CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni", "none": "none"}
_BATCH_ELEMENTS = 4_000_000


def as_generator(random_state: RandomState) -> np.random.Generator:
    """Return a NumPy Generator for ``random_state`` (an int seed, a Generator, or None)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be an int, a numpy Generator or None, not {type(random_state).__name__}")


def correction_name(correction: str) -> str:
    """Return the statsmodels name of ``correction`` (holm, bh, bonferroni, none)."""
    try:
        return _CORRECTIONS[correction]
    except KeyError:
        raise ValueError(f"unknown correction {correction!r}; expected one of {sorted(_CORRECTIONS)}") from None


def adjust_pvalues(p: Sequence[float] | np.ndarray, correction: str = "holm") -> np.ndarray:
    """Return ``p`` corrected over the family (NaN entries stay NaN and are not counted).

    ``correction`` is ``holm`` (default, confirmatory), ``bh`` (Benjamini–Hochberg, exploratory),
    ``bonferroni`` or ``none``; BH and Bonferroni call ``statsmodels.stats.multitest.multipletests``,
    Holm is computed here with the same arithmetic (tests pin it to ``multipletests``).
    """
    method = correction_name(correction)
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if not ok.any():
        return out
    if method == "none":
        out[ok] = p[ok]
    elif method == "holm":
        out[ok] = _holm(p[ok])
    else:
        out[ok] = multipletests(p[ok], method=method)[1]
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    # Same arithmetic as multipletests(method="holm") (the tests pin it), without the gc.collect()
    # that statsmodels runs on every Holm call and that costs ~0.2 s with matplotlib loaded.
    order = np.argsort(p)
    stepped = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    out = np.empty_like(p)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _tail_count(null: np.ndarray, observed: float, alternative: str) -> int:
    # A relative tolerance, as scipy's permutation_test uses, so ties with the observed value count.
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "two-sided":
        return int(np.count_nonzero(np.abs(null) >= abs(observed) - tol))
    if alternative == "greater":
        return int(np.count_nonzero(null >= observed - tol))
    if alternative == "less":
        return int(np.count_nonzero(null <= observed + tol))
    raise ValueError(f"unknown alternative {alternative!r}; expected 'two-sided', 'greater' or 'less'")


def _stratum_permutations(size: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(size))), dtype=np.intp).reshape(-1, size)


def permutation_null(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    strata: np.ndarray,
    *,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    """Return ``(null, kind)``: the statistic under permutations of positions within strata.

    ``statistic`` maps an index array ``(B, n)`` (each row a permutation of ``0..n-1`` that keeps
    every position inside its stratum) to ``(B,)`` statistics. When there are at most
    ``max(n_resamples, EXACT_LIMIT)`` such permutations all are enumerated (``kind = "exact"``, the
    identity included); otherwise ``n_resamples`` random ones are drawn (``kind = "permutation"``).
    """
    strata = np.asarray(strata)
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    total = math.prod(math.factorial(len(g)) for g in groups)
    batch = max(1, _BATCH_ELEMENTS // max(n, 1))
    parts: list[np.ndarray] = []
    if total <= max(n_resamples, EXACT_LIMIT):
        per_group = [_stratum_permutations(len(g)) for g in groups]
        combos = itertools.product(*[range(len(p)) for p in per_group])
        while True:
            chunk = list(itertools.islice(combos, batch))
            if not chunk:
                break
            idx = np.empty((len(chunk), n), dtype=np.intp)
            choice = np.array(chunk, dtype=np.intp).reshape(len(chunk), len(groups))
            for j, (members, perms) in enumerate(zip(groups, per_group)):
                idx[:, members] = members[perms[choice[:, j]]]
            parts.append(np.asarray(statistic(idx), dtype=float))
        return np.concatenate(parts), "exact"
    done = 0
    while done < n_resamples:
        b = min(batch, n_resamples - done)
        idx = np.empty((b, n), dtype=np.intp)
        for members in groups:
            idx[:, members] = rng.permuted(np.broadcast_to(members, (b, members.size)), axis=1)
        parts.append(np.asarray(statistic(idx), dtype=float))
        done += b
    return np.concatenate(parts), "permutation"


def pvalue_from_null(null: np.ndarray, observed: float, kind: str, alternative: str = "two-sided") -> float:
    """Return the p-value of ``observed`` against a permutation ``null``.

    ``kind = "exact"``: ``count / N`` over every permutation; ``"permutation"``:
    ``(count + 1) / (B + 1)``, never below ``1 / (B + 1)``. Two-sided counts ``|T| >= |observed|``.
    """
    count = _tail_count(null, observed, alternative)
    return count / null.size if kind == "exact" else (count + 1) / (null.size + 1)


def sign_flip_pvalue(
    diffs: np.ndarray,
    *,
    n_resamples: int,
    rng: np.random.Generator,
    alternative: str = "two-sided",
) -> tuple[float, str]:
    """Return ``(p, kind)`` of the sign-flip permutation test of mean(diffs) = 0.

    ``diffs`` is ``(n,)`` paired differences. All ``2**n`` sign patterns are enumerated when that
    is at most ``max(n_resamples, 4096)`` (``kind = "exact"``); otherwise ``n_resamples`` random
    patterns give ``(count + 1) / (B + 1)``.
    """
    diffs = np.asarray(diffs, dtype=float)
    n = diffs.size
    observed = float(diffs.mean())
    if 2**n <= max(n_resamples, 4096):
        signs = 1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1)
        null = (signs * diffs).mean(axis=1)
        return _tail_count(null, observed, alternative) / 2**n, "exact"
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, n))
    null = (signs * diffs).mean(axis=1)
    return (_tail_count(null, observed, alternative) + 1) / (n_resamples + 1), "permutation"
