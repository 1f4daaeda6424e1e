"""Reading a study back from storage: one row per kept COMPLETE trial, the rest counted."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution

from analysis_synthetic import build_study

from analysis import AnalysisError, load_study, load_trials

FACTORS = {"embedder.proxy": ["cifar", "fake"], "embedder.epochs": [0, 5], "body.pretrained": [True, False]}
N_KEPT = 2 * 2 * 8  # tasks x seeds x cells


@pytest.fixture(scope="module")
def full_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study with failures, duplicates and a running trial (built once: SQLite writes are slow)."""
    return build_study(tmp_path_factory.mktemp("full"), "s", factors=FACTORS, tasks=("ecg", "digits"),
                       seeds=(0, 1), n_fail=3, n_duplicates=2, n_running=1)


def test_load_trials_columns_and_types(full_url: str) -> None:
    df = load_trials(full_url, "s")
    assert list(df.columns[:3]) == ["trial", "task", "seed"]
    assert list(df.columns[3:6]) == list(FACTORS)
    for col in ("modality", "otdd_before", "otdd_after", "val_score", "test_score", "value", "seconds"):
        assert col in df.columns
    assert len(df) == N_KEPT
    assert df.attrs["factors"] == list(FACTORS)
    assert set(df["body.pretrained"]) == {True, False}
    assert set(df["embedder.epochs"]) == {0, 5}
    np.testing.assert_allclose(df["value"], df["test_score"])


def test_failed_running_and_duplicate_trials_are_counted_not_kept(full_url: str) -> None:
    data = load_study(full_url, "s")
    counts = dict(zip(data.summary["state"], data.summary["count"]))
    assert counts["COMPLETE"] == N_KEPT
    assert counts["FAIL"] == 3 and counts["DUPLICATE"] == 2 and counts["RUNNING"] == 1
    assert len(data.trials) == counts["COMPLETE"]
    # The first COMPLETE trial of a cell is kept: the duplicates were written later with value 0.
    assert (data.trials["value"] > 0.5).all()
    assert len(data.failures) == 3 and data.failures["error"].str.contains("out of memory").all()


def test_study_without_cell_or_factor_attrs(make_study: Callable[..., str]) -> None:
    # Without `cell`, duplicates are found by (task, seed, factor params); without `factors`,
    # every param but task and seed is a factor.
    url = make_study(factors=FACTORS, tasks=("ecg",), seeds=(0,), n_duplicates=4, with_cell=False,
                     record_factors=False)
    data = load_study(url, "s")
    counts = dict(zip(data.summary["state"], data.summary["count"]))
    assert counts["DUPLICATE"] == 4 and len(data.trials) == 8
    assert set(data.factors) == set(FACTORS)


def test_curves_are_a_long_frame(full_url: str) -> None:
    data = load_study(full_url, "s")
    assert list(data.curves.columns) == ["trial", "task", "seed", *FACTORS, "step", "otdd"]
    assert len(data.curves) == 3 * len(data.trials)
    first = data.curves[data.curves["step"] == 0].set_index("trial")["otdd"]
    np.testing.assert_allclose(first.sort_index(), data.trials.set_index("trial")["otdd_before"].sort_index())
    assert data.spec["name"] == "s"


@pytest.fixture(params=["sqlite", "journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A fresh (URL, study name) of every storage the product supports."""
    name = f"s{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}", name
    elif request.param == "journal":
        yield f"journal:///{tmp_path / 'study.log'}", name
    else:
        yield request.getfixturevalue("pg_url"), name


def test_every_storage_kind_loads_the_same(storage_url: tuple[str, str], tmp_path: Path) -> None:
    url, name = storage_url
    build_study(tmp_path, name, storage=url, tasks=("ecg",), seeds=(0, 1), n_fail=1, n_duplicates=1)
    data = load_study(url, name)
    assert dict(zip(data.summary["state"], data.summary["count"]))["FAIL"] == 1
    assert len(data.trials) == 4 and data.summary["count"].sum() == 6
    assert list(data.factors) == ["embedder.proxy"]


def test_missing_optional_attrs_become_nan(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bare.db'}"
    study = optuna.create_study(study_name="bare", storage=url)
    dist = {"task": CategoricalDistribution(["ecg"]), "seed": CategoricalDistribution([0, 1])}
    for seed in (0, 1):
        study.add_trial(optuna.trial.create_trial(params={"task": "ecg", "seed": seed}, distributions=dist,
                                                  value=0.5))
    df = load_trials(url, "bare")
    assert len(df) == 2 and df["otdd_after"].isna().all() and df["test_score"].isna().all()
    assert "modality" not in df.columns


def test_accepts_a_storage_object(tmp_path: Path) -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="mem", storage=storage)
    dist = {"task": CategoricalDistribution(["ecg"]), "seed": CategoricalDistribution([0])}
    study.add_trial(optuna.trial.create_trial(params={"task": "ecg", "seed": 0}, distributions=dist, value=1.0,
                                              user_attrs={"test_score": 1.0}))
    assert load_trials(storage, "mem")["test_score"].tolist() == [1.0]


def test_secondary_metrics_are_the_other_test_metrics_a_trial_recorded() -> None:
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(study_name="sec", storage=storage)
    dist = {"task": CategoricalDistribution(["ecg"]), "seed": CategoricalDistribution([0, 1, 2]),
            "method": CategoricalDistribution(["a"])}
    for seed, details in enumerate([{"test_metrics": {"accuracy": 0.9, "macro_f1": 0.8, "rel_l2": 0.3}},
                                    {"test_metrics": {"accuracy": 0.8, "method": 5.0}}, {}]):
        study.add_trial(optuna.trial.create_trial(
            params={"task": "ecg", "seed": seed, "method": "a"}, distributions=dist, value=0.9,
            user_attrs={"test_score": 0.9, "metric": "accuracy", "details": details}))
    study.set_user_attr("factors", ["method"])
    data = load_study(storage, "sec")
    # The trial's own metric is the primary; a name that is a factor would overwrite it and is left out.
    assert dict(data.secondary) == {"macro_f1": "maximize", "rel_l2": "minimize"}
    assert data.trials.attrs["secondary"] == dict(data.secondary)
    np.testing.assert_allclose(data.trials["macro_f1"], [0.8, np.nan, np.nan])
    assert data.trials["method"].tolist() == ["a", "a", "a"]


def test_missing_study_is_a_user_error_naming_the_studies(full_url: str) -> None:
    with pytest.raises(AnalysisError, match=r"no study 'nope'.*\['s'\].*optuna studies --storage"):
        load_trials(full_url, "nope")


@pytest.mark.parametrize("url", ["sqlite:///{}/absent.db", "journal:///{}/absent.log", "{}/absent.log"])
def test_missing_file_is_an_error_and_is_not_created(tmp_path: Path, url: str) -> None:
    with pytest.raises(AnalysisError, match="does not exist"):
        load_trials(url.format(tmp_path), "s")
    assert not list(tmp_path.iterdir())


def test_study_without_complete_trials_is_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="empty", storage=url)
    with pytest.raises(AnalysisError, match="no COMPLETE trial"):
        load_trials(url, "empty")


def test_frame_is_tidy_one_row_per_trial(full_url: str) -> None:
    df = load_trials(full_url, "s")
    assert df["trial"].is_unique
    assert not df.duplicated(subset=["task", "seed", *FACTORS]).any()
    assert isinstance(df, pd.DataFrame)
