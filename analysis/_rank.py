"""Vectorised correlation statistics within strata, row by row over resamples.

Every function takes ``X, Y`` of shape ``(B, n)`` (B resamples of n paired observations) and ``G``
of shape ``(B, n)``: integer stratum codes ``0..n_groups-1`` (all zeros for one group). Pairs are
compared only inside a stratum, so a pooled statistic never treats tasks as exchangeable; with one
stratum each reduces to the textbook statistic (Spearman's rho, Pearson's r, Kendall's tau-b).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

__all__ = [
    "WeightedRanks",
    "corr_rows",
    "dense_codes",
    "kendall_rows",
    "pearson_rows",
    "resample_weights",
    "spearman_rows",
    "weighted_spearman",
    "within_center",
    "within_ranks",
]

_BATCH_ELEMENTS = 4_000_000

RowStatistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(X, Y, G)`` of shape ``(B, n)`` -> ``(B,)`` statistics."""
IndexStatistic = Callable[[np.ndarray], np.ndarray]
"""Resample indices ``(B, m)`` -> ``(B,)`` statistics."""


def dense_codes(values: np.ndarray) -> np.ndarray:
    """Return ``(n,)`` float codes ``0..m-1`` that keep the order (and ties) of ``values``."""
    return np.unique(np.asarray(values), return_inverse=True)[1].astype(float).reshape(-1)


def _take(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(table, index, axis=1)


def within_ranks(V: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Return ``(B, n)`` mid-ranks of integer codes ``V`` within strata, centred and divided by the stratum size."""
    V = V.astype(np.intp)
    G = G.astype(np.intp)
    B, n = V.shape
    m = int(V.max()) + 1 if V.size else 1
    n_groups = int(G.max()) + 1 if G.size else 1
    width = n_groups * m
    key = G * m + V
    flat = key + (np.arange(B, dtype=np.intp) * width)[:, None]
    counts = np.bincount(flat.ravel(), minlength=B * width).reshape(B, width)
    before = np.cumsum(counts, axis=1) - counts
    group_start = before[:, ::m]
    group_size = np.bincount((G + (np.arange(B, dtype=np.intp) * n_groups)[:, None]).ravel(),
                             minlength=B * n_groups).reshape(B, n_groups)
    ranks = _take(before, key) - _take(group_start, G) + (_take(counts, key) + 1) / 2.0
    size = _take(group_size, G).astype(float)
    return (ranks - (size + 1) / 2.0) / size


def within_center(V: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Return ``(B, n)`` values ``V`` minus the mean of their stratum in the same row."""
    G = G.astype(np.intp)
    B, n = V.shape
    n_groups = int(G.max()) + 1 if G.size else 1
    flat = (G + (np.arange(B, dtype=np.intp) * n_groups)[:, None]).ravel()
    sums = np.bincount(flat, weights=V.ravel(), minlength=B * n_groups).reshape(B, n_groups)
    sizes = np.bincount(flat, minlength=B * n_groups).reshape(B, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / sizes
    return V - _take(means, G)


def corr_rows(A: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Return ``(B,)`` cosine similarity of rows: Pearson's r for rows already centred; NaN when a row is constant."""
    num = np.einsum("ij,ij->i", A, C)
    den = np.sqrt(np.einsum("ij,ij->i", A, A) * np.einsum("ij,ij->i", C, C))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~(den > 1e-300)] = np.nan
    return out


def _batched(fn: RowStatistic, X: np.ndarray, Y: np.ndarray, G: np.ndarray, per_row: int) -> np.ndarray:
    B = X.shape[0]
    step = max(1, _BATCH_ELEMENTS // max(per_row, 1))
    if B <= step:
        return fn(X, Y, G)
    return np.concatenate([fn(X[i:i + step], Y[i:i + step], G[i:i + step]) for i in range(0, B, step)])


def spearman_rows(X: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Return ``(B,)`` Spearman's rho within strata; ``X, Y`` must be integer codes (see :func:`dense_codes`)."""
    width = (int(G.max()) + 1) * (int(max(X.max(), Y.max())) + 1) + X.shape[1]

    def one(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
        return corr_rows(within_ranks(x, g), within_ranks(y, g))

    return _batched(one, X, Y, G, width)


def pearson_rows(X: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Return ``(B,)`` Pearson's r of values centred within strata."""
    return _batched(lambda x, y, g: corr_rows(within_center(x, g), within_center(y, g)), X, Y, G, X.shape[1])


def _kendall_pairs(X: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    n = X.shape[1]
    i, j = np.triu_indices(n, 1)
    same = G[:, i] == G[:, j]
    sx = np.sign(X[:, i] - X[:, j]) * same
    sy = np.sign(Y[:, i] - Y[:, j]) * same
    num = np.einsum("ij,ij->i", sx, sy)
    den = np.sqrt(np.einsum("ij,ij->i", sx, sx) * np.einsum("ij,ij->i", sy, sy))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~(den > 0)] = np.nan
    return out


def _tied_pairs(v: np.ndarray) -> float:
    counts = np.unique(v, return_counts=True)[1].astype(float)
    return float((counts * (counts - 1) / 2).sum())


def _kendall_loop(X: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    # O(n log n) per row through scipy; S and the tie-corrected pair counts add up across strata.
    out = np.empty(X.shape[0])
    for b in range(X.shape[0]):
        s = tx = ty = 0.0
        for g in np.unique(G[b]):
            sel = G[b] == g
            x, y = X[b, sel], Y[b, sel]
            if x.size < 2:
                continue
            n0 = x.size * (x.size - 1) / 2
            ax, ay = n0 - _tied_pairs(x), n0 - _tied_pairs(y)
            if ax > 0 and ay > 0:
                s += stats.kendalltau(x, y).statistic * np.sqrt(ax * ay)
            tx += ax
            ty += ay
        out[b] = s / np.sqrt(tx * ty) if tx > 0 and ty > 0 else np.nan
    return out


def kendall_rows(X: np.ndarray, Y: np.ndarray, G: np.ndarray) -> np.ndarray:
    """Return ``(B,)`` Kendall's tau-b over pairs inside a stratum (stratified tau-b)."""
    n = X.shape[1]
    pairs = n * (n - 1) // 2
    if pairs > 50_000:
        return _kendall_loop(X, Y, G)
    return _batched(_kendall_pairs, X, Y, G, 4 * pairs)


class WeightedRanks:
    """Mid-ranks of fixed codes under resampling weights, centred and scaled within strata.

    Built once from ``codes`` ``(n,)`` and ``strata`` ``(n,)``; :meth:`__call__` takes weights
    ``W`` ``(B, n)`` (how often each observation was drawn) and returns ``(B, n)`` ranks that equal
    :func:`within_ranks` of the resampled data, for every observation (drawn or not).
    """

    def __init__(self, codes: np.ndarray, strata: np.ndarray) -> None:
        codes = np.asarray(codes).astype(np.intp)
        strata = np.asarray(strata).astype(np.intp)
        m = int(codes.max()) + 1
        key = strata * m + codes
        self.order = np.lexsort((codes, strata))
        sorted_key = key[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        unique_keys = sorted_key[self.starts]
        self.key_of_item = np.searchsorted(unique_keys, key)
        key_stratum = unique_keys // m
        self.key_stratum = key_stratum
        self.stratum_first = np.flatnonzero(np.r_[True, key_stratum[1:] != key_stratum[:-1]])
        self.first_of_key = self.stratum_first[np.searchsorted(key_stratum[self.stratum_first], key_stratum)]
        self.stratum_index = np.searchsorted(key_stratum[self.stratum_first], key_stratum)
        self.tied = self.starts.size < codes.size

    def __call__(self, W: np.ndarray) -> np.ndarray:
        per_key = np.take(W, self.order, axis=1)
        if self.tied:
            per_key = np.add.reduceat(per_key, self.starts, axis=1)
        below = np.cumsum(per_key, axis=1)
        below -= per_key
        if self.stratum_first.size == 1:
            totals = below[:, -1:] + per_key[:, -1:]
        else:
            below -= np.take(below, self.first_of_key, axis=1)
            totals = np.take(np.add.reduceat(per_key, self.stratum_first, axis=1), self.stratum_index, axis=1)
        below += per_key / 2
        below -= totals / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            below /= totals
        # A stratum that no draw landed in has weight 0 everywhere: give it rank 0, not NaN.
        below[~np.isfinite(below)] = 0.0
        return np.take(below, self.key_of_item, axis=1)


def resample_weights(idx: np.ndarray, n: int) -> np.ndarray:
    """Return ``(B, n)`` counts of each observation in each row of resample indices ``idx`` ``(B, m)``."""
    B = idx.shape[0]
    flat = (idx.astype(np.intp) + (np.arange(B, dtype=np.intp) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(float)


def _untied(codes: np.ndarray, strata: np.ndarray) -> bool:
    codes, strata = np.asarray(codes), np.asarray(strata)
    return np.unique(np.stack([strata.astype(float), codes.astype(float)]), axis=1).shape[1] == codes.size


def weighted_spearman(x_codes: np.ndarray, y_codes: np.ndarray, strata: np.ndarray) -> IndexStatistic:
    """Return a function mapping resample indices ``(B, m)`` to ``(B,)`` within-strata Spearman's rho."""
    n = np.asarray(x_codes).size
    if _untied(x_codes, strata) and _untied(y_codes, strata):
        return _untied_spearman(np.asarray(x_codes), np.asarray(y_codes), np.asarray(strata).astype(np.intp))
    rx, ry = WeightedRanks(x_codes, strata), WeightedRanks(y_codes, strata)

    def stat(idx: np.ndarray) -> np.ndarray:
        W = resample_weights(idx, n)
        a, c = rx(W), ry(W)
        aw = a * W
        num = np.einsum("ij,ij->i", aw, c)
        den = np.sqrt(np.einsum("ij,ij->i", aw, a) * np.einsum("ij,ij->i", W * c, c))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[~(den > 1e-300)] = np.nan
        return out

    return stat


def _untied_spearman(x_codes: np.ndarray, y_codes: np.ndarray, strata: np.ndarray) -> IndexStatistic:
    # No ties inside a stratum: sort by (stratum, value) once. A value drawn w times then has the
    # mid-rank C - w/2 + 1/2 - (weight drawn in earlier strata), where C is the running weight; the
    # stratum's mean rank is (T + 1)/2 for T draws in it. Centre and divide by T, as within_ranks does.
    n = x_codes.size
    ox, oy = np.lexsort((x_codes, strata)), np.lexsort((y_codes, strata))
    y_to_x = np.argsort(oy)[ox]  # position in y order of the item at each x-order position
    sizes = np.bincount(strata)
    sizes = sizes[sizes > 0]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]

    def ranks(W: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.take(W, order, axis=1)
        r = np.cumsum(w, axis=1)
        totals = np.add.reduceat(w, starts, axis=1)
        shift = r[:, starts] - w[:, starts] + totals / 2.0  # weight before the stratum + T/2
        r -= 0.5 * w
        if sizes.size == 1:
            r -= shift
            r /= np.where(totals > 0, totals, np.inf)
        else:
            r -= np.repeat(shift, sizes, axis=1)
            r /= np.repeat(np.where(totals > 0, totals, np.inf), sizes, axis=1)
        return r, w

    def stat(idx: np.ndarray) -> np.ndarray:
        W = resample_weights(idx, n)
        rx, wx = ranks(W, ox)
        ry = np.take(ranks(W, oy)[0], y_to_x, axis=1)
        wrx = wx * rx
        num = np.einsum("ij,ij->i", wrx, ry)
        den = np.sqrt(np.einsum("ij,ij->i", wrx, rx) * np.einsum("ij,ij->i", wx * ry, ry))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out[~(den > 1e-300)] = np.nan
        return out

    return stat
