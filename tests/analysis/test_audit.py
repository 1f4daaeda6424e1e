"""The audit's reproducers (issue 13, D1-D5): each design flaw it found, now answered correctly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from analysis_synthetic import trials_frame

from analysis import AnalysisError, Hypothesis, hypothesis_tests
from analysis._rules import paired_stats, shown, verdict_of
from analysis.sections.correlation import OTDD_CORRELATION
from analysis.sections import TestInputs

PROXY = Hypothesis("proxy-irrelevant", kind="no_change", factor="embedder.proxy", level=("fake",), reference="vocab")


def summary(out: pd.DataFrame, hid: str) -> pd.Series:
    return out[(out["hypothesis"] == hid) & (out["variant"] == "summary")].iloc[0]


def run(df: pd.DataFrame, hypotheses: list[Hypothesis], **kwargs: Any) -> pd.DataFrame:
    return hypothesis_tests(df, hypotheses, n_resamples=199, random_state=0, **kwargs)


def test_d1_otdd_with_four_configurations_is_not_testable_and_trial_rows_are_gone() -> None:
    # 4 configurations x 5 seeds, no true relation: the old trial-level test rejected in ~44% of studies.
    df = trials_frame(tasks=("ecg",), factors={"embedder.epochs": [0, 4, 16, 48]}, noise=0.01, seed=1)
    rows = OTDD_CORRELATION.tests(TestInputs(df, "test_score", None, 199, (0, 1)))  # type: ignore[misc]
    assert set(rows["variant"]) == {"config", "within"}  # no trial-level rows
    within = rows[rows["variant"] == "within"]
    assert within["note"].str.startswith("secondary: seed-level, permutations within configurations").all()
    task = rows[rows["task"] == "ecg"].iloc[0]
    assert task["n"] == 4 and "not testable with 4 configurations (needs ≥ 5" in task["note"]
    out = run(df, [Hypothesis("otdd", kind="predicts", x="otdd_after")])
    config = out[out["variant"] == "config"].iloc[0]
    assert config["verdict"] == "not evaluated" and "not testable with 4 configurations" in config["note"]
    assert summary(out, "otdd")["verdict"] == "not evaluated"


def test_d2_search_trials_are_not_replicates() -> None:
    df = trials_frame(tasks=("ecg",), factors={"embedder.proxy": ["vocab", "fake"]}, noise=0.01, seed=2)
    copies = [df.assign(val_score=df["val_score"] + k, trial=df["trial"] + 100 * k) for k in range(3)]
    search = pd.concat(copies, ignore_index=True)
    search.attrs = dict(df.attrs)
    out = run(search, [PROXY])
    level = out[out["variant"] == "level"].iloc[0]
    assert level["n"] == 5  # seeds, not 15 trials
    assert "20 search trial(s) kept out" in summary(out, "proxy-irrelevant")["note"]
    best = copies[2].copy()
    best.attrs = dict(df.attrs)
    np.testing.assert_allclose(level["estimate"], run(best, [PROXY]).query("variant == 'level'")["estimate"].iloc[0])


def test_d3_missing_cells_do_not_make_a_contrast() -> None:
    # Proxy without effect, epochs +0.05; the (fake, 16) cell failed on every seed.
    df = trials_frame(tasks=("ecg",), seeds=range(8), factors={"embedder.proxy": ["vocab", "fake"],
                                                               "embedder.epochs": [0, 16]}, noise=0.002, seed=3,
                      score=lambda t, s, c, r: 0.7 + (0.05 if c["embedder.epochs"] == 16 else 0))
    df = df[~((df["embedder.proxy"] == "fake") & (df["embedder.epochs"] == 16))]
    out = run(df, [PROXY])
    level = out[out["variant"] == "level"].iloc[0]
    assert summary(out, "proxy-irrelevant")["verdict"] != "contradicted"
    assert abs(level["estimate"]) < 0.005 and "8 of 16 block(s)" in level["note"]


def _exact(mean: float, sd: float, n: int = 8) -> np.ndarray:
    z = np.random.default_rng(0).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_d4_contradiction_needs_the_whole_interval_beyond_the_margin() -> None:
    d = _exact(0.011, 0.0084)  # CI about [0.004, 0.018] at margin 0.01
    s = paired_stats(d)
    lo, hi = s.ci(0.05)
    assert 0.003 < lo < 0.005 and 0.017 < hi < 0.019
    assert verdict_of(shown("no_change", s, 0.01), 0.05) == "inconclusive"  # was "contradicted"
    claim7 = paired_stats(_exact(-0.0134, 0.0084))  # digits: D = -0.0134, CI -0.020 to -0.006
    assert verdict_of(shown("no_change", claim7, 0.01), 0.05) == "inconclusive"
    assert verdict_of(shown("helps", paired_stats(_exact(0.011, 0.0084)), 0.01), 0.05) != "supported"


def test_d4_not_worse_is_one_sided_and_tasks_that_disagree_do_not_support() -> None:
    better = paired_stats(_exact(0.05, 0.01))  # the level is much better: not worse, supported
    assert verdict_of(shown("not_worse", better, 0.01), 0.05) == "supported"
    df = trials_frame(tasks=("ecg", "digits"), seeds=range(8), noise=0.002, seed=4,
                      factors={"embedder.proxy": ["vocab", "fake"]},
                      score=lambda t, s, c, r: 0.7 + (0.05 if c["embedder.proxy"] == "fake" and t == "ecg"
                                                      else -0.05 if c["embedder.proxy"] == "fake" else 0))
    helps = Hypothesis("fake-helps", kind="helps", factor="embedder.proxy", level=("fake",), reference="vocab")
    out = run(df, [helps])
    per_task = dict(out.loc[out["variant"] == "level", ["task", "verdict"]].to_numpy())
    assert per_task == {"ecg": "supported", "digits": "contradicted"}
    assert summary(out, "fake-helps")["verdict"] == "contradicted"


@pytest.mark.parametrize(("case", "score", "expected"), [
    ("zero variance", lambda t, s, c, r: 0.7 + 0.01 * s + (0.02 if c["embedder.proxy"] == "fake" else 0),
     "zero variance"),
    ("collapsed task", lambda t, s, c, r: 0.0417, "zero variance"),
    ("infinite score", lambda t, s, c, r: np.inf if (s == 0 and c["embedder.proxy"] == "fake") else 0.7 + r.normal(),
     "infinite"),
])
def test_d5_degenerate_data_is_not_evaluated(case: str, score: Any, expected: str) -> None:
    df = trials_frame(tasks=("ecg",), factors={"embedder.proxy": ["vocab", "fake"]}, score=score, seed=5)
    out = run(df, [PROXY])
    level = out[out["variant"] == "level"].iloc[0]
    assert level["verdict"] == "not evaluated" and expected in level["note"] and np.isnan(level["p_support"])
    assert summary(out, "proxy-irrelevant")["verdict"] == "not evaluated"


def test_d5_two_seeds_and_text_scores() -> None:
    df = trials_frame(tasks=("ecg",), seeds=(0, 1), factors={"embedder.proxy": ["vocab", "fake"]}, noise=0.05)
    level = run(df, [PROXY]).query("variant == 'level'").iloc[0]
    assert level["verdict"] == "not evaluated" and "needs at least 3" in level["note"]
    text = df.assign(test_score=["0.7", "oops"] * 2)
    with pytest.raises(AnalysisError, match="holds text"):
        run(text, [PROXY])


def test_minimised_errors_use_log_ratios() -> None:
    # rel_l2 halves at the level: log(reference / level) = log 2 > log 1.05, so helps is supported.
    df = trials_frame(tasks=("ecg",), seeds=range(6), factors={"embedder.proxy": ["vocab", "fake"]}, seed=6,
                      score=lambda t, s, c, r: (0.5 if c["embedder.proxy"] == "fake" else 1.0) * (1 + 0.05 * r.normal()))
    df["direction"] = "minimize"
    out = run(df, [Hypothesis("fake-helps", kind="helps", factor="embedder.proxy", level=("fake",),
                              reference="vocab")])
    level = out.query("variant == 'level'").iloc[0]
    np.testing.assert_allclose(level["estimate"], np.log(2), atol=0.1)
    np.testing.assert_allclose(level["margin"], np.log(1.05))
    assert level["verdict"] == "supported"


def test_margin_changed_after_the_fact_is_exploratory() -> None:
    from analysis.sections.hypotheses import settings_for

    used, why = settings_for({"analysis": {"margin": 0.01}}, 0.02, None)
    assert used.margin == 0.02 and why.startswith("exploratory: margin 0.02 (recorded: 0.01)")
    assert settings_for({"analysis": {"margin": 0.01}}, None, None)[1] == ""
