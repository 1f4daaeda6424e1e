"""Factor tests pinned to statsmodels and scipy: ANOVA, mixed model, paired contrasts, Friedman."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from analysis_synthetic import trials_frame
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from analysis import NOT_ENOUGH_DATA, AnalysisError, factor_tests
from analysis._contrasts import compare

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


def test_anova_matches_statsmodels(df: pd.DataFrame, out: pd.DataFrame) -> None:
    # Reference: anova_lm(ols("y ~ C(proxy) + C(epochs) + C(seed)").fit(), typ=2)
    model = smf.ols("y ~ C(proxy) + C(epochs) + C(seed)", plain(df)).fit()
    table = anova_lm(model, typ=2)
    row = out[out["test"] == "anova"].iloc[0]
    np.testing.assert_allclose(row["statistic"], table.loc["C(proxy)", "F"])
    np.testing.assert_allclose(row["p_val"], table.loc["C(proxy)", "PR(>F)"])
    assert row["df"] == 2 and row["df2"] == model.df_resid
    ss, res = table.loc["C(proxy)", "sum_sq"], table.loc["Residual", "sum_sq"]
    np.testing.assert_allclose(row["effect_size"], ss / (ss + res))
    assert row["effect_type"] == "partial_eta_sq"


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_mixed_model_matches_statsmodels(df: pd.DataFrame, out: pd.DataFrame) -> None:
    # Reference: mixedlm("y ~ C(proxy) + C(epochs)", groups=seed).fit().wald_test_terms()
    data = plain(df).assign(proxy=lambda f: f["proxy"].astype(str), epochs=lambda f: f["epochs"].astype(str))
    result = smf.mixedlm("y ~ C(proxy) + C(epochs)", data, groups=data["seed"]).fit()
    wald = result.wald_test_terms(scalar=True).table.loc["C(proxy)"]
    row = out[out["test"] == "mixedlm"].iloc[0]
    np.testing.assert_allclose(row["statistic"], wald["statistic"], rtol=1e-6)
    np.testing.assert_allclose(row["p_val"], wald["pvalue"], rtol=1e-5)


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
    for test in ("anova", "mixedlm"):
        np.testing.assert_allclose(both.query("test == @test and factor == 'embedder.epochs'")["statistic"],
                                   alone.query("test == @test")["statistic"])


def test_one_level_or_one_seed_gives_notes_not_crashes() -> None:
    one_level = trials_frame(factors={"embedder.proxy": ["cifar"]})
    out = factor_tests(one_level, "embedder.proxy", n_resamples=99, random_state=0)
    assert out["note"].str.contains(NOT_ENOUGH_DATA).all()
    one_seed = trials_frame(seeds=(0,), factors={"embedder.proxy": ["cifar", "fake"]})
    out = factor_tests(one_seed, "embedder.proxy", n_resamples=99, random_state=0)
    contrast = out[out["test"] == "contrast"].iloc[0]
    assert np.isnan(contrast["p_val"]) and NOT_ENOUGH_DATA in contrast["note"]
    assert NOT_ENOUGH_DATA in out[out["test"] == "mixedlm"].iloc[0]["note"]


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
