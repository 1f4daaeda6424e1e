"""Correlation tests pinned to scipy: statistics, exact and permutation p-values, bootstrap CIs."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import NOT_ENOUGH_DATA, AnalysisError, correlation_tests
from analysis._correlation import CORRELATION_METHODS, _bootstrap_ci
from analysis._rank import _kendall_loop, _kendall_pairs, dense_codes, spearman_rows, weighted_spearman
from analysis._resampling import as_generator, permutation_null, pvalue_from_null


def frame(x: np.ndarray, y: np.ndarray, task: str = "ecg") -> pd.DataFrame:
    return pd.DataFrame({"task": task, "seed": 0, "otdd_after": x, "test_score": y})


def test_spearman_on_four_ranked_points_is_exact() -> None:
    # scipy.stats.spearmanr gives p = 0 here; the exact two-sided p is 2 / 4! = 0.0833.
    df = frame(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.1, 0.2, 0.3, 0.4]))
    row = correlation_tests(df, random_state=0).iloc[0]
    assert row["task"] == "ecg" and row["variant"] == "trial" and row["p_kind"] == "exact"
    np.testing.assert_allclose(row["statistic"], 1.0)
    np.testing.assert_allclose(row["p_val"], 2 / 24)


@pytest.mark.parametrize("method", ["spearman", "kendall", "pearson"])
def test_exact_p_matches_enumeration_with_scipy_statistics(method: str) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=6), rng.normal(size=6)
    ref = {"spearman": stats.spearmanr, "kendall": stats.kendalltau, "pearson": stats.pearsonr}[method]
    observed = ref(x, y).statistic
    # Reference: every one of the 6! pairings through scipy's own statistic.
    null = np.array([ref(x, y[list(p)]).statistic for p in itertools.permutations(range(6))])
    row = correlation_tests(frame(x, y), method=method, random_state=0, pooled=False).iloc[0]
    np.testing.assert_allclose(row["statistic"], observed)
    assert row["p_kind"] == "exact"
    np.testing.assert_allclose(row["p_val"], np.mean(np.abs(null) >= abs(observed) - 1e-12))


@pytest.mark.parametrize("method", ["spearman", "kendall", "pearson"])
def test_statistics_match_scipy_with_ties(method: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, 40).astype(float)
    y = x + rng.integers(0, 4, 40)
    ref = {"spearman": stats.spearmanr, "kendall": stats.kendalltau, "pearson": stats.pearsonr}[method]
    row = correlation_tests(frame(x, y), method=method, n_resamples=199, random_state=0, pooled=False).iloc[0]
    np.testing.assert_allclose(row["statistic"], ref(x, y).statistic, rtol=1e-12)
    assert row["p_kind"] == "permutation" and row["p_val"] >= 1 / 200


def test_permutation_p_agrees_with_scipy_permutation_test() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=25)
    y = 0.3 * x + rng.normal(size=25)
    row = correlation_tests(frame(x, y), n_resamples=9999, random_state=0, pooled=False).iloc[0]
    # Reference: scipy.stats.permutation_test((x,), spearman, permutation_type="pairings"); both are
    # Monte Carlo estimates (SD of the difference about 0.008 here), hence the tolerance.
    ref = stats.permutation_test((x,), lambda a: stats.spearmanr(a, y).statistic, permutation_type="pairings",
                                 n_resamples=1999, rng=np.random.default_rng(1), vectorized=False)
    assert 0.01 < ref.pvalue < 0.5
    np.testing.assert_allclose(row["p_val"], ref.pvalue, atol=0.03)


def test_spearman_bootstrap_ci_matches_scipy_bootstrap() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)

    def spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        return np.array([stats.spearmanr(u, v).statistic for u, v in zip(a2, b2)]).reshape(a.shape[:-1])

    # Reference: scipy.stats.bootstrap((x, y), spearman, paired=True, method="BCa", rng=default_rng(7))
    ref = stats.bootstrap((x, y), spearman, paired=True, vectorized=True, method="BCa", n_resamples=999,
                          rng=np.random.default_rng(7))
    m = CORRELATION_METHODS["spearman"]
    low, high, _ = _bootstrap_ci(m, m.prepare(x), m.prepare(y), np.zeros(30, dtype=np.intp), 0.95, 999,
                                 np.random.default_rng(7))
    np.testing.assert_allclose([low, high], [ref.confidence_interval.low, ref.confidence_interval.high],
                               rtol=1e-10)


def test_bootstrap_is_reproducible_for_a_random_state() -> None:
    rng = np.random.default_rng(5)
    df = frame(rng.normal(size=40), rng.normal(size=40))
    a = correlation_tests(df, n_resamples=499, random_state=11)
    b = correlation_tests(df, n_resamples=499, random_state=11)
    c = correlation_tests(df, n_resamples=499, random_state=12)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "ci_low"] != c.loc[0, "ci_low"]


def test_pearson_ci_is_fisher_z() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    row = correlation_tests(frame(x, y), method="pearson", n_resamples=99, random_state=0, pooled=False).iloc[0]
    ci = stats.pearsonr(x, y).confidence_interval(0.95)  # reference
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], [ci.low, ci.high])


def test_weighted_ranks_equal_ranks_of_resampled_data() -> None:
    rng = np.random.default_rng(8)
    for x, g in [(rng.integers(0, 4, 30).astype(float), np.repeat([0, 1, 2], 10)),
                 (rng.normal(size=30), np.repeat([0, 1, 2], 10)),
                 (rng.normal(size=30), np.repeat([0, 1, 2, 3, 4], [2, 2, 2, 2, 22]))]:
        y = rng.normal(size=30)
        cx, cy = dense_codes(x), dense_codes(y)
        idx = rng.integers(0, 30, (300, 30))
        np.testing.assert_allclose(weighted_spearman(cx, cy, g)(idx), spearman_rows(cx[idx], cy[idx], g[idx]))
        # A stratum-wise Spearman equals scipy's within a single stratum.
        first = g == 0
        single = spearman_rows(cx[first][None, :], cy[first][None, :],
                               np.zeros((1, int(first.sum())), dtype=np.intp))[0]
        np.testing.assert_allclose(single, stats.spearmanr(x[g == 0], y[g == 0]).statistic)


def test_pooled_row_does_not_treat_tasks_as_exchangeable() -> None:
    # Within each task y falls as x rises; the tasks' offsets make the naive pooled rho positive.
    x = np.r_[np.arange(10.0), np.arange(10.0) + 20]
    y = np.r_[-np.arange(10.0), -np.arange(10.0) + 100]
    df = pd.DataFrame({"task": ["a"] * 10 + ["b"] * 10, "otdd_after": x, "test_score": y})
    assert stats.spearmanr(x, y).statistic > 0.4
    out = correlation_tests(df, n_resamples=999, random_state=0).set_index("task")
    np.testing.assert_allclose(out.loc["all", "statistic"], -1.0)
    np.testing.assert_allclose(out.loc["a", "statistic"], -1.0)
    assert out.loc["all", "n"] == 20 and out.loc["all", "p_val"] <= 0.002


def test_pooled_p_of_independent_tasks_is_not_significant() -> None:
    rng = np.random.default_rng(9)
    df = pd.concat([frame(rng.normal(size=30), rng.normal(size=30), t) for t in ("a", "b", "c")])
    out = correlation_tests(df, n_resamples=999, random_state=0).set_index("task")
    assert out.loc["all", "p_kind"] == "permutation" and out.loc["all", "p_val"] > 0.05


def test_holm_across_groups_and_bh_on_request() -> None:
    rng = np.random.default_rng(10)
    df = pd.concat([frame(rng.normal(size=12), rng.normal(size=12), t) for t in ("a", "b", "c")])
    holm = correlation_tests(df, n_resamples=199, random_state=0)
    np.testing.assert_allclose(holm["p_adj"], multipletests(holm["p_val"], method="holm")[1])
    bh = correlation_tests(df, n_resamples=199, random_state=0, correction="bh")
    np.testing.assert_allclose(bh["p_adj"], multipletests(bh["p_val"], method="fdr_bh")[1])
    assert set(bh["correction"]) == {"fdr_bh"}


def test_config_aggregate_averages_seeds_first() -> None:
    rows = [{"task": "a", "seed": s, "embedder.epochs": e, "otdd_after": 10 - e + 0.1 * s, "test_score": e + s}
            for s in range(3) for e in range(5)]
    df = pd.DataFrame(rows)
    df.attrs["factors"] = ["embedder.epochs"]
    out = correlation_tests(df, aggregate="config", n_resamples=99, random_state=0, pooled=False).iloc[0]
    assert out["variant"] == "config" and out["n"] == 5
    np.testing.assert_allclose(out["statistic"], -1.0)
    np.testing.assert_allclose(out["p_val"], 2 / 120)


def _within_frame(rng: np.random.Generator, effect: float, configs: int = 4, seeds: int = 5) -> pd.DataFrame:
    """Two tasks; configuration effects on OTDD and score independent; seeds share ``effect``'s link."""
    rows = []
    for task in ("a", "b"):
        for config in range(configs):
            cx, cy = rng.normal(0, 3), rng.normal(0, 3)  # large configuration effects: they must not leak in
            for seed in range(seeds):
                e = rng.normal()
                rows.append({"task": task, "f": config, "seed": seed, "otdd_after": cx + e,
                             "test_score": cy - effect * e + rng.normal()})
    df = pd.DataFrame(rows)
    df.attrs["factors"] = ["f"]
    return df


def test_within_configuration_ranks_and_permutes_inside_each_configuration() -> None:
    df = _within_frame(np.random.default_rng(5), effect=1.0)
    out = correlation_tests(df, aggregate="within", n_resamples=999, random_state=0)
    for task, part in df.groupby("task"):  # the statistic: Pearson of ranks centred within each configuration
        rx = part.groupby("f")["otdd_after"].rank()
        ry = part.groupby("f")["test_score"].rank()
        expected = np.corrcoef(rx - rx.groupby(part["f"]).transform("mean"),
                               ry - ry.groupby(part["f"]).transform("mean"))[0, 1]
        row = out[out["task"] == task].iloc[0]
        assert row["variant"] == "within" and row["n"] == 20
        np.testing.assert_allclose(row["statistic"], expected)
    assert "pooled within 8 groups" in out[out["task"] == "all"].iloc[0]["note"]


@pytest.mark.slow
def test_within_configuration_holds_alpha_and_has_power() -> None:
    # Configuration effects are large and shared by OTDD and score (the D1 trap): a trial-level test
    # rejects almost always; permutations within configurations must not.
    reps, alpha = 300, 0.05
    rng = np.random.default_rng(11)
    null = [correlation_tests(_within_frame(rng, 0.0), aggregate="within", n_resamples=199,
                              random_state=i).iloc[-1]["p_val"] for i in range(reps)]
    power = [correlation_tests(_within_frame(rng, 1.0), aggregate="within", n_resamples=199,
                               random_state=i).iloc[-1]["p_val"] for i in range(60)]
    rate = float(np.mean(np.asarray(null) < alpha))
    se = np.sqrt(alpha * (1 - alpha) / reps)
    hits = float(np.mean(np.asarray(power) < alpha))
    print(f"\nwithin-configuration correlation: rejection at the null {rate:.4f} (limit {alpha + 2 * se:.4f}), "
          f"power at a seed-level link of -1: {hits:.3f}")
    assert rate <= alpha + 2 * se, rate
    assert hits >= 0.8


def test_within_needs_a_configuration_with_two_varying_seeds() -> None:
    df = pd.DataFrame({"task": "a", "f": [0, 1, 2, 3], "seed": 0, "otdd_after": [1.0, 2, 3, 4],
                       "test_score": [1.0, 2, 3, 4]})
    df.attrs["factors"] = ["f"]
    row = correlation_tests(df, aggregate="within", random_state=0, pooled=False).iloc[0]
    assert np.isnan(row["statistic"]) and row["note"].startswith(NOT_ENOUGH_DATA)


def test_otdd_reduction_is_before_minus_after() -> None:
    df = pd.DataFrame({"task": "a", "otdd_before": [5.0, 6, 7, 8], "otdd_after": [4.0, 4, 4, 4],
                       "test_score": [1.0, 2, 3, 4]})
    row = correlation_tests(df, x="otdd_reduction", random_state=0, pooled=False).iloc[0]
    assert row["x"] == "otdd_reduction"
    np.testing.assert_allclose(row["statistic"], 1.0)


def test_too_little_data_gives_a_row_with_a_note_not_a_crash() -> None:
    df = pd.DataFrame({"task": ["a", "a", "b", "b", "b"], "otdd_after": [1.0, 2, 3, 3, 3],
                       "test_score": [1.0, 2, 1, 2, 3]})
    out = correlation_tests(df, random_state=0)
    assert len(out) == 3
    assert out["note"].str.startswith(NOT_ENOUGH_DATA).all()
    assert out["statistic"].isna().all() and out["p_adj"].isna().all()


def test_unknown_method_lists_the_choices() -> None:
    with pytest.raises(AnalysisError, match=r"unknown correlation method 'tau'.*kendall"):
        correlation_tests(frame(np.arange(5.0), np.arange(5.0)), method="tau")


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(AnalysisError, match="no column"):
        correlation_tests(frame(np.arange(5.0), np.arange(5.0)), x="otdd")


def test_pooled_exact_p_enumerates_permutations_within_tasks() -> None:
    rng = np.random.default_rng(12)
    xa, ya, xb, yb = (rng.normal(size=4) for _ in range(4))
    df = pd.concat([frame(xa, ya, "a"), frame(xb, yb, "b")])
    row = correlation_tests(df, random_state=0).set_index("task").loc["all"]

    # Reference: within-task ranks (scipy rankdata), centred and scaled by the task size, then
    # Pearson's r; the null enumerates the 4! x 4! within-task permutations.
    def scaled(v: np.ndarray) -> np.ndarray:
        return (stats.rankdata(v) - 2.5) / 4

    tx = np.r_[scaled(xa), scaled(xb)]
    observed = np.corrcoef(tx, np.r_[scaled(ya), scaled(yb)])[0, 1]
    null = [np.corrcoef(tx, np.r_[scaled(ya)[list(p)], scaled(yb)[list(q)]])[0, 1]
            for p in itertools.permutations(range(4)) for q in itertools.permutations(range(4))]
    assert row["p_kind"] == "exact"
    np.testing.assert_allclose(row["statistic"], observed)
    np.testing.assert_allclose(row["p_val"], np.mean(np.abs(null) >= abs(observed) - 1e-12))


def test_pooled_p_from_summed_task_nulls_matches_a_direct_permutation_test() -> None:
    # Large tasks: the pooled null is the sum of the tasks' null draws; compare with permuting anew.
    rng = np.random.default_rng(13)
    xs = [rng.normal(size=40) for _ in range(3)]
    ys = [0.1 * x + rng.normal(size=40) for x in xs]
    df = pd.concat([frame(x, y, t) for x, y, t in zip(xs, ys, "abc")])
    row = correlation_tests(df, n_resamples=4999, random_state=0).set_index("task").loc["all"]
    g = np.repeat(np.arange(3), 40)
    tx = np.concatenate([(stats.rankdata(x) - 20.5) / 40 for x in xs])
    ty = np.concatenate([(stats.rankdata(y) - 20.5) / 40 for y in ys])
    scale = np.sqrt((tx @ tx) * (ty @ ty))
    null, kind = permutation_null(lambda idx: ty[idx] @ tx / scale, 120, g, n_resamples=4999, rng=as_generator(1))
    ref = pvalue_from_null(null, float(tx @ ty / scale), kind)
    assert kind == row["p_kind"] == "permutation"
    assert 0.02 < ref < 0.8
    np.testing.assert_allclose(row["p_val"], ref, atol=0.03)


def test_kendall_loop_and_pairwise_paths_agree() -> None:
    rng = np.random.default_rng(14)
    X = rng.integers(0, 6, (5, 40)).astype(float)
    Y = X + rng.integers(0, 3, (5, 40))
    G = np.tile(np.repeat([0, 1], 20), (5, 1))
    np.testing.assert_allclose(_kendall_loop(X, Y, G), _kendall_pairs(X, Y, G))
    one = np.zeros_like(G)
    np.testing.assert_allclose(_kendall_pairs(X, Y, one)[0], stats.kendalltau(X[0], Y[0]).statistic)
