"""Factor tests pinned to statsmodels and scipy: blocked F (AnovaRM, by hand), paired contrasts, Friedman."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from analysis_synthetic import trials_frame
from scipy import stats
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from analysis import NOT_ENOUGH_DATA, AnalysisError, factor_tests
from analysis._contrasts import compare
from analysis._factors import blocked_f

PROXY = {"embedder.proxy": ["cifar", "fake", "vocab"], "embedder.epochs": [0, 5]}
EFFECT = {"cifar": 0.0, "fake": 0.03, "vocab": -0.01}


def score(task: str, seed: int, cell: dict, rng: np.random.Generator) -> float:
    return 0.7 + EFFECT[cell["embedder.proxy"]] + 0.01 * cell["embedder.epochs"] / 5 + 0.02 * seed


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return trials_frame(tasks=("ecg",), seeds=range(6), factors=PROXY, score=score, noise=0.01, seed=1)


@pytest.fixture(scope="module")
def out(df: pd.DataFrame) -> pd.DataFrame:
    return factor_tests(df, "embedder.proxy", n_resamples=999, random_state=0)


def plain(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"y": df["test_score"], "proxy": df["embedder.proxy"], "epochs": df["embedder.epochs"],
                         "seed": df["seed"]})


def test_blocked_f_matches_statsmodels_anovarm(df: pd.DataFrame, out: pd.DataFrame) -> None:
    # Reference: AnovaRM with seed as subject, the other factor averaged per (seed, level) ...
    data = plain(df).assign(proxy=lambda f: f["proxy"].astype(str), epochs=lambda f: f["epochs"].astype(str))
    ref = AnovaRM(data, "y", "seed", within=["proxy"], aggregate_func="mean").fit().anova_table.loc["proxy"]
    # ... which is the proxy row of the full two-factor repeated-measures ANOVA (the design the docstring names).
    full = AnovaRM(data, "y", "seed", within=["proxy", "epochs"]).fit().anova_table.loc["proxy"]
    row = out[out["test"] == "anova"].iloc[0]
    assert row["variant"] == "blocked" and row["n"] == 6
    assert (row["df"], row["df2"]) == (2, 10) == (ref["Num DF"], ref["Den DF"])
    np.testing.assert_allclose([row["statistic"], row["p_val"]], [ref["F Value"], ref["Pr > F"]], rtol=1e-10)
    np.testing.assert_allclose([row["statistic"], row["p_val"]], [full["F Value"], full["Pr > F"]], rtol=1e-10)


def test_blocked_f_by_hand() -> None:
    # Two-way layout without replication, 3 seeds x 2 levels, worked through by hand.
    y = np.array([[1.0, 3.0], [2.0, 3.0], [3.0, 6.0]])
    # grand 3; level means 2, 4 -> SS_level = 3 * (1 + 1) = 6; seed means 2, 2.5, 4.5;
    # residuals y - level - seed + grand: [0, 0, ...] -> [[0, 0], [0.5, -0.5], [-0.5, 0.5]] -> SS_error = 1.
    res = blocked_f(y)
    assert (res["df1"], res["df2"]) == (1, 2)
    np.testing.assert_allclose([res["ss_level"], res["ss_error"], res["F"]], [6.0, 1.0, 12.0])
    np.testing.assert_allclose(res["p"], stats.f.sf(12.0, 1, 2))
    # Two levels: F equals the paired t squared.
    t = stats.ttest_rel(y[:, 1], y[:, 0])
    np.testing.assert_allclose([res["F"], res["p"]], [t.statistic ** 2, t.pvalue])
    # Zero residual variance (an exactly additive table) is not a test.
    assert np.isnan(blocked_f(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))["p"])


def test_blocked_f_drops_incomplete_seeds_and_disjoint_seeds_are_unblocked(df: pd.DataFrame) -> None:
    holed = df.drop(df[(df["seed"] == 0) & (df["embedder.proxy"] == "fake") & (df["embedder.epochs"] == 5)].index)
    row = factor_tests(holed, "embedder.proxy", n_resamples=99, random_state=0).query("test == 'anova'").iloc[0]
    assert row["n"] == 5 and row["df2"] == 8 and "1 of 6 seed(s) lack a cell" in row["note"]
    rows = [{"task": "a", "seed": s, "f": lv, "test_score": v}
            for lv, seeds, vals in (("x", range(0, 4), [0.70, 0.72, 0.69, 0.71]),
                                    ("y", range(4, 8), [0.75, 0.74, 0.78, 0.76]))
            for s, v in zip(seeds, vals)]
    disjoint = pd.DataFrame(rows)
    disjoint.attrs["factors"] = ["f"]
    row = factor_tests(disjoint, "f", n_resamples=99, random_state=0).query("test == 'anova'").iloc[0]
    ref = stats.f_oneway([0.70, 0.72, 0.69, 0.71], [0.75, 0.74, 0.78, 0.76])  # reference
    assert row["variant"] == "unblocked"
    np.testing.assert_allclose([row["statistic"], row["p_val"]], [ref.statistic, ref.pvalue])


def test_paired_contrasts_match_scipy(df: pd.DataFrame, out: pd.DataFrame) -> None:
    means = df.groupby(["seed", "embedder.proxy"])["test_score"].mean().unstack()
    contrasts = out[out["test"] == "contrast"].set_index("level")
    assert list(contrasts.index) == ["fake", "vocab"] and set(contrasts["reference"]) == {"cifar"}
    for level in ("fake", "vocab"):
        a, b = means[level].to_numpy(), means["cifar"].to_numpy()
        ref = stats.ttest_rel(a, b)  # reference
        ci = ref.confidence_interval(0.95)
        row = contrasts.loc[level]
        assert row["variant"] == "paired" and row["n"] == 6 and row["effect_type"] == "hedges_g_av"
        np.testing.assert_allclose([row["statistic"], row["p_val"]], [ref.statistic, ref.pvalue])
        np.testing.assert_allclose([row["estimate"], row["ci_low"], row["ci_high"]],
                                   [np.mean(a - b), ci.low, ci.high])
        # Hedges' g_av (Lakens 2013): mean difference over the mean of the two SDs, times J(n - 1).
        d_av = np.mean(a - b) / ((a.std(ddof=1) + b.std(ddof=1)) / 2)
        np.testing.assert_allclose(row["effect_size"], d_av * (1 - 3 / (4 * 5 - 1)))
        # Exact sign-flip p over all 2**6 sign patterns.
        d = a - b
        null = [np.mean(np.array(s) * d) for s in itertools.product([-1, 1], repeat=6)]
        np.testing.assert_allclose(row["p_perm"], np.mean(np.abs(null) >= abs(d.mean()) - 1e-12))
    np.testing.assert_allclose(contrasts["p_adj"], multipletests(contrasts["p_val"], method="holm")[1])


def test_unpaired_design_is_explicit_welch() -> None:
    rows = [{"task": "a", "seed": s, "f": lv, "test_score": v}
            for lv, seeds, vals in (("x", range(0, 5), [0.70, 0.72, 0.69, 0.71, 0.73]),
                                    ("y", range(5, 10), [0.75, 0.74, 0.78, 0.76, 0.77]))
            for s, v in zip(seeds, vals)]
    df = pd.DataFrame(rows)
    df.attrs["factors"] = ["f"]
    row = factor_tests(df, "f", n_resamples=999, random_state=0).query("test == 'contrast'").iloc[0]
    x = np.array([0.70, 0.72, 0.69, 0.71, 0.73])
    y = np.array([0.75, 0.74, 0.78, 0.76, 0.77])
    ref = stats.ttest_ind(y, x, equal_var=False)  # reference
    assert row["variant"] == "unpaired" and "unpaired" in row["note"]
    np.testing.assert_allclose([row["statistic"], row["p_val"]], [ref.statistic, ref.pvalue])
    pooled = math.sqrt((4 * y.var(ddof=1) + 4 * x.var(ddof=1)) / 8)
    np.testing.assert_allclose(row["effect_size"], (y.mean() - x.mean()) / pooled * (1 - 3 / (4 * 8 - 1)))
    assert row["effect_type"] == "hedges_g"
    # Exact label permutation: all C(10, 5) splits, and this one is the most extreme.
    np.testing.assert_allclose(row["p_perm"], 2 / math.comb(10, 5))


def test_friedman_and_posthoc_across_tasks() -> None:
    df = trials_frame(tasks=("a", "b", "c", "d"), seeds=range(3),
                      factors={"embedder.proxy": ["cifar", "fake", "vocab"]},
                      score=lambda t, s, c, r: {"a": .5, "b": .6, "c": .7, "d": .8}[t] + EFFECT[c["embedder.proxy"]],
                      noise=0.005, seed=2)
    out = factor_tests(df, "embedder.proxy", n_resamples=99, random_state=0)
    means = df.groupby(["task", "embedder.proxy"])["test_score"].mean().unstack()
    ref = stats.friedmanchisquare(means["cifar"], means["fake"], means["vocab"])  # reference
    row = out[out["test"] == "friedman"].iloc[0]
    assert row["task"] == "all" and row["n"] == 4
    np.testing.assert_allclose([row["statistic"], row["p_val"]], [ref.statistic, ref.pvalue])
    posthoc = out[out["test"] == "wilcoxon"]
    assert len(posthoc) == 3
    w = stats.wilcoxon(means["cifar"] - means["fake"])  # reference for one pair
    pair = posthoc[(posthoc["level"] == "cifar") & (posthoc["reference"] == "fake")].iloc[0]
    np.testing.assert_allclose(pair["p_val"], w.pvalue)
    np.testing.assert_allclose(posthoc["p_adj"], multipletests(posthoc["p_val"], method="holm")[1])


def test_reference_and_family_options(df: pd.DataFrame) -> None:
    out = factor_tests(df, "embedder.proxy", reference="fake", family="task", n_resamples=99, random_state=0)
    contrasts = out[out["test"] == "contrast"]
    assert set(contrasts["reference"]) == {"fake"} and set(contrasts["level"]) == {"cifar", "vocab"}
    assert set(contrasts["family"]) == {"contrasts embedder.proxy ecg"}
    with pytest.raises(AnalysisError, match="not a level"):
        factor_tests(df, "embedder.proxy", reference="imagenet")
    with pytest.raises(AnalysisError, match="no factor"):
        factor_tests(df, "body.pretrained")


def test_several_factors_in_one_call_match_separate_calls(df: pd.DataFrame) -> None:
    both = factor_tests(df, ["embedder.proxy", "embedder.epochs"], n_resamples=99, random_state=0)
    alone = factor_tests(df, "embedder.epochs", n_resamples=99, random_state=0)
    np.testing.assert_allclose(both.query("test == 'anova' and factor == 'embedder.epochs'")["statistic"],
                               alone.query("test == 'anova'")["statistic"])
    assert "mixedlm" not in set(both["test"])


def test_one_level_or_one_seed_gives_notes_not_crashes() -> None:
    one_level = trials_frame(factors={"embedder.proxy": ["cifar"]})
    out = factor_tests(one_level, "embedder.proxy", n_resamples=99, random_state=0)
    assert out["note"].str.contains(NOT_ENOUGH_DATA).all()
    one_seed = trials_frame(seeds=(0,), factors={"embedder.proxy": ["cifar", "fake"]})
    out = factor_tests(one_seed, "embedder.proxy", n_resamples=99, random_state=0)
    contrast = out[out["test"] == "contrast"].iloc[0]
    assert np.isnan(contrast["p_val"]) and NOT_ENOUGH_DATA in contrast["note"]
    anova = out[out["test"] == "anova"].iloc[0]
    assert np.isnan(anova["p_val"]) and NOT_ENOUGH_DATA in anova["note"]


def test_identical_difference_on_every_seed() -> None:
    same = trials_frame(factors={"embedder.proxy": ["cifar", "fake"]},
                        score=lambda t, s, c, r: 0.7 + 0.01 * s + (0.02 if c["embedder.proxy"] == "fake" else 0))
    row = factor_tests(same, "embedder.proxy", n_resamples=99, random_state=0).query("test == 'contrast'").iloc[0]
    np.testing.assert_allclose([row["estimate"], row["ci_low"], row["ci_high"], row["p_val"]], [0.02, 0.02, 0.02, 0.0],
                               atol=1e-12)
    assert "zero variance" in row["note"]


def test_margin_tests_match_statsmodels_tost_and_one_sided_t() -> None:
    rng = np.random.default_rng(3)
    a = pd.Series(0.70 + 0.01 * rng.normal(size=8))
    b = pd.Series(0.70 + 0.01 * rng.normal(size=8))
    c = compare(a, b, margin=0.01, rng=rng, n_resamples=99)
    assert c is not None
    # Reference: statsmodels ttost_paired and scipy's one-sided one-sample t on the differences.
    np.testing.assert_allclose(c.p_tost, ttost_paired(a.to_numpy(), b.to_numpy(), -0.01, 0.01)[0])
    d = (a - b).to_numpy()
    np.testing.assert_allclose(c.p_beyond(0.01, "less"), stats.ttest_1samp(d, 0.01, alternative="less").pvalue)
    np.testing.assert_allclose(c.p_beyond(-0.01, "greater"),
                               stats.ttest_1samp(d, -0.01, alternative="greater").pvalue)
    np.testing.assert_allclose(c.p_tost, max(c.p_beyond(-0.01, "greater"), c.p_beyond(0.01, "less")))


def test_unpaired_contrast_of_constant_groups_uses_the_t_limits() -> None:
    from analysis._contrasts import compare

    # Disjoint seeds force the unpaired (Welch) design; constant groups make t infinite.
    level = pd.Series([0.75, 0.75, 0.75], index=[0, 1, 2])
    reference = pd.Series([0.5, 0.5, 0.5], index=[3, 4, 5])
    c = compare(level, reference, margin=0.01, rng=np.random.default_rng(0))
    assert c is not None and c.variant == "unpaired"
    assert c.statistic == float("inf") and c.p_val == 0.0 and c.df == 4.0
    assert c.estimate == 0.25
