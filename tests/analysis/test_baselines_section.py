"""The baselines section: every ORCA configuration and baseline per task, and best against best, by hand."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import load_study, write_report
from analysis.sections import TestInputs
from analysis.sections.baselines import BASELINES
from studies import StudySpec, run_study


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    seeds = [0, 1, 2, 3]
    orca = pd.DataFrame({"trial": range(8), "task": "t", "seed": seeds * 2, "embedder.epochs": [0] * 4 + [2] * 4,
                         "test_score": [0.70, 0.72, 0.71, 0.69, 0.75, 0.77, 0.74, 0.76]})
    orca.attrs["factors"] = ["embedder.epochs"]
    base = pd.DataFrame({"trial": range(8, 16), "task": "t", "seed": seeds * 2, "baseline": ["knn"] * 4 + ["lr"] * 4,
                         "metric": "accuracy", "direction": "maximize", "val_score": 0.8,
                         "test_score": [0.80, 0.81, 0.79, 0.82, 0.60, 0.61, 0.62, 0.60], "seconds": 1.0})
    return orca, base


def test_best_orca_configuration_against_best_baseline_by_hand() -> None:
    orca, base = _frames()
    rows = BASELINES.tests(TestInputs(orca, "test_score", None, 99, (), None, base))
    scores = rows[rows["variant"] != "best-vs-best"].set_index("level")["estimate"]
    assert scores["ORCA embedder.epochs=2"] == pytest.approx(0.755)
    assert scores["knn"] == pytest.approx(0.805)
    best = rows[rows["variant"] == "best-vs-best"].iloc[0]
    assert (best["level"], best["reference"]) == ("ORCA embedder.epochs=2", "knn")
    diff = np.array([0.75, 0.77, 0.74, 0.76]) - np.array([0.80, 0.81, 0.79, 0.82])
    assert best["estimate"] == pytest.approx(diff.mean())
    half = 3.182446305284263 * diff.std(ddof=1) / 2  # scipy.stats.t.ppf(0.975, 3)
    assert best["ci_high"] == pytest.approx(diff.mean() + half, rel=1e-9)
    assert best["note"] == "ORCA's best configuration is below the best baseline"


def test_a_study_with_baselines_reports_them(tmp_path: Path) -> None:
    spec = StudySpec.from_dict({"name": "b", "tasks": ["digits"], "seeds": [0, 1, 2],
                                "factors": {"embedder.epochs": [0, 2]}, "baselines": ["knn", "logreg"]})
    url = str(tmp_path / "s.log")
    run_study(spec, storage=url, inline=True, trial_fn="studies._testing:fake_trial", progress=False,
              log=io.StringIO())
    data = load_study(url, "b")
    assert len(data.trials) == 6 and sorted(set(data.baselines["baseline"])) == ["knn", "logreg"]
    report = write_report(url, "b", tmp_path / "report", n_resamples=99)
    tests = pd.read_csv(tmp_path / "report" / "tests.csv")
    named = set(tests.loc[tests["test"] == "baseline", "level"])
    assert {"knn", "logreg", "ORCA embedder.epochs=0", "ORCA embedder.epochs=2"} <= named
    text = Path(report).read_text()
    assert "ORCA beside classical baselines" in text
    # The summary says how ORCA fares against the baselines, one line per task ...
    summary = text.split("## Evidence")[0]
    assert "Against the classical baselines on the same splits" in summary and "- `digits`: " in summary
    # ... and every factor table and figure has them beside the levels.
    means = tests[(tests["test"] == "level_mean") & (tests["factor"] == "embedder.epochs")]
    assert set(means.loc[means["variant"] == "level", "level"].astype(str)) == {"0", "2"}
    knn = means[(means["variant"] == "baseline") & (means["level"] == "knn")].iloc[0]
    by_seed = data.baselines[data.baselines["baseline"] == "knn"].groupby("seed")["test_score"].mean()
    assert knn["n"] == 3 and knn["estimate"] == pytest.approx(by_seed.mean())
    assert "| digits | baseline | knn | 3 |" in text and "dashed: the classical baselines" in text


def test_factor_means_without_baselines_have_no_baseline_rows() -> None:
    from analysis.sections.factors import FACTORS

    orca, _ = _frames()
    rows = FACTORS.tests(TestInputs(orca, "test_score", None, 99, (0,), None, None))
    means = rows[rows["test"] == "level_mean"]
    assert list(means["variant"]) == ["level", "level"]
    assert means["estimate"].tolist() == pytest.approx([0.705, 0.755])


def _helps_spec() -> dict:
    return {"name": "h", "factors": {"embedder.epochs": [0, 2]}, "direction": "maximize",
            "analysis": {"margin": 0.01, "alpha": 0.05},
            "hypotheses": [{"id": "beats-baselines", "kind": "helps", "factor": "embedder.epochs", "level": 2,
                            "reference": "best_baseline"}]}


@pytest.mark.parametrize(("knn", "verdict"), [(0.60, "supported"), (0.90, "contradicted")])
def test_helps_against_best_baseline_must_beat_every_baseline(knn: float, verdict: str) -> None:
    from analysis._hypotheses import hypothesis_tests

    rng = np.random.default_rng(0)
    seeds = list(range(8))
    orca = pd.DataFrame({"trial": range(16), "task": "t", "seed": seeds * 2, "embedder.epochs": [0] * 8 + [2] * 8,
                         "test_score": np.r_[np.full(8, 0.70), 0.80 + rng.normal(0, 0.005, 8)]})
    orca.attrs["factors"] = ["embedder.epochs"]
    orca.attrs["spec"] = _helps_spec()
    base = pd.DataFrame({"trial": range(16, 32), "task": "t", "seed": seeds * 2, "baseline": ["knn"] * 8 + ["lr"] * 8,
                         "metric": "accuracy", "direction": "maximize", "val_score": 0.5, "seconds": 1.0,
                         "test_score": np.r_[knn + rng.normal(0, 0.005, 8), 0.60 + rng.normal(0, 0.005, 8)]})
    rows = hypothesis_tests(orca, n_resamples=99, random_state=0, baselines=base)
    summary = rows[(rows["hypothesis"] == "beats-baselines") & (rows["task"] == "all")].iloc[0]
    assert summary["verdict"] == verdict
    against = rows[rows["reference"].str.startswith("baseline ")]
    assert sorted(against["reference"]) == ["baseline knn", "baseline lr"]
