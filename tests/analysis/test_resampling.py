"""Permutation p-values against full enumeration; corrections against statsmodels."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from analysis import adjust_pvalues
from analysis._resampling import as_generator, permutation_null, pvalue_from_null, sign_flip_pvalue

P = np.array([0.01, 0.04, 0.03, 0.2, 0.005, 0.5])


@pytest.mark.parametrize(("correction", "method"), [("holm", "holm"), ("bh", "fdr_bh"),
                                                    ("bonferroni", "bonferroni")])
def test_corrections_match_multipletests(correction: str, method: str) -> None:
    # Reference: statsmodels.stats.multitest.multipletests(P, method=method)[1]
    np.testing.assert_allclose(adjust_pvalues(P, correction), multipletests(P, method=method)[1])


def test_holm_matches_multipletests_on_random_families() -> None:
    rng = np.random.default_rng(0)
    for _ in range(4):
        p = rng.uniform(size=rng.integers(1, 30)) ** 3
        np.testing.assert_allclose(adjust_pvalues(p, "holm"), multipletests(p, method="holm")[1])


def test_nan_p_values_are_left_out_of_the_family() -> None:
    out = adjust_pvalues([0.01, np.nan, 0.04], "holm")
    np.testing.assert_allclose(out[[0, 2]], multipletests([0.01, 0.04], method="holm")[1])
    assert np.isnan(out[1])


def test_unknown_correction_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        adjust_pvalues(P, "sidak-ish")


def test_exact_permutation_counts_every_permutation() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([2.0, 1.0, 4.0, 3.0, 5.0])
    observed = float(np.corrcoef(x, y)[0, 1])
    null, kind = permutation_null(lambda idx: np.array([np.corrcoef(x, y[i])[0, 1] for i in idx]),
                                  5, np.zeros(5, int), n_resamples=99, rng=as_generator(0))
    p = pvalue_from_null(null, observed, kind)
    # Reference: enumerate all 5! pairings by hand.
    null = [np.corrcoef(x, y[list(perm)])[0, 1] for perm in itertools.permutations(range(5))]
    expected = np.mean(np.abs(null) >= abs(observed) - 1e-12)
    assert kind == "exact"
    np.testing.assert_allclose(p, expected)


def test_random_permutation_p_has_floor_one_over_b_plus_one() -> None:
    n = 30
    x = np.arange(n, dtype=float)
    null, kind = permutation_null(lambda idx: x[idx] @ x, n, np.zeros(n, int), n_resamples=199, rng=as_generator(1))
    p = pvalue_from_null(null, float(x @ x), kind)
    assert kind == "permutation"
    np.testing.assert_allclose(p, 1 / 200)


def test_permutations_stay_within_strata() -> None:
    strata = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    seen: list[np.ndarray] = []

    def record(idx: np.ndarray) -> np.ndarray:
        seen.append(idx.copy())
        return np.zeros(len(idx))

    permutation_null(record, strata.size, strata, n_resamples=50, rng=as_generator(0))
    idx = np.concatenate(seen)
    assert idx.shape == (50, strata.size)  # 3! * 9! > max(50, 8!), so random
    assert (strata[idx] == strata[None, :]).all()


def test_exact_sign_flip_matches_enumeration() -> None:
    d = np.array([0.3, -0.1, 0.4, 0.2, 0.25])
    p, kind = sign_flip_pvalue(d, n_resamples=9999, rng=as_generator(0))
    # Reference: all 2**5 sign patterns.
    null = [np.mean(np.array(s) * d) for s in itertools.product([-1, 1], repeat=5)]
    assert kind == "exact"
    np.testing.assert_allclose(p, np.mean(np.abs(null) >= abs(d.mean()) - 1e-12))
    # Five positive differences: the smallest two-sided exact p is 2 / 32.
    np.testing.assert_allclose(sign_flip_pvalue(np.ones(5), n_resamples=9999, rng=as_generator(0))[0], 2 / 32)


def test_random_state_accepts_int_generator_or_none() -> None:
    assert isinstance(as_generator(None), np.random.Generator)
    g = np.random.default_rng(3)
    assert as_generator(g) is g
    with pytest.raises(TypeError, match="random_state"):
        as_generator("seed")  # type: ignore[arg-type]
    assert math.isclose(as_generator(5).random(), np.random.default_rng(5).random())
