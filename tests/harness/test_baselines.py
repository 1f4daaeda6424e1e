"""Classical baselines: the registry, one run of each on a small task, the same splits as run_trial, determinism."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io
import torch

import harness
from harness import ConfigError, TrialConfig, TrialResult, contract, run_trial
from harness.baselines import BASELINES, BaselineSpec, check_baseline, default_baselines, run_baseline
from harness.parts import build_parts

ITALY = "ucr:ItalyPowerDemand"


# -- tiny dense and multilabel tasks in the NAS-Bench-360 formats (as in test_nasbench.py), with signal -------


def write_darcy(root: Path, size: int = 41) -> None:
    """Darcy .mat files whose solution is a linear map of a uniform coefficient plus noise (ridge can learn it)."""
    rng = np.random.default_rng(15)
    for name, n in (("smooth1", 40), ("smooth2", 12)):
        coeff = np.broadcast_to(np.where(rng.random((n, 1, 1)) < 0.5, 3.0, 12.0), (n, size, size))
        sol = coeff * 1e-3 + rng.random((n, size, size)) * 1e-3
        scipy.io.savemat(root / f"piececonst_r421_N1024_{name}.mat", {"coeff": coeff, "sol": sol})


def write_deepsea(root: Path, length: int = 20, labels: int = 6) -> None:
    """DeepSEA npz whose label k says whether base k is 'A', one in twenty flipped (so not separable)."""
    rng, arrays = np.random.default_rng(15), {}
    for split, n in (("train", 120), ("val", 30), ("test", 60)):
        bases = rng.integers(0, 4, size=(n, length))
        arrays[f"x_{split}"] = np.eye(4, dtype=np.uint8)[bases]
        arrays[f"y_{split}"] = ((bases[:, :labels] == 0) ^ (rng.random((n, labels)) < 0.05)).astype(np.uint8)
    np.savez(root / "deepsea_filtered.npz", **arrays)


@pytest.fixture(scope="module")
def nasbench_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("baseline-tasks")
    write_darcy(root)
    write_deepsea(root)
    return str(root)


def _cfg(task: str, seed: int = 0, **data: Any) -> TrialConfig:
    return TrialConfig().override({"task": task, "seed": seed, **{f"data.{k}": v for k, v in data.items()}})


# -- registry ------------------------------------------------------------------------------------------------


def test_registry_and_defaults() -> None:
    assert set(BASELINES) == {"minirocket", "knn", "logreg", "ridge", "mean", "logreg-multilabel"}
    assert all(isinstance(s, BaselineSpec) and s.name == n for n, s in BASELINES.items())
    assert default_baselines("1d", "classes") == ["minirocket", "knn"]
    assert default_baselines("2d", "classes") == ["logreg", "knn"]
    assert default_baselines("2d", "dense") == default_baselines("1d", "dense") == ["ridge", "mean"]
    assert default_baselines("1d", "multilabel") == ["logreg-multilabel"]
    for modality in ("1d", "2d"):
        for output in ("classes", "dense", "multilabel"):
            assert all(BASELINES[b].applies(modality, output) for b in default_baselines(modality, output))
    with pytest.raises(ConfigError, match=r"no default baselines for modality '3d'.*expected one of \['1d/classes'"):
        default_baselines("3d", "classes")
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASELINES["knn"].name = "other"  # type: ignore[misc]


def test_unknown_or_unfit_baseline_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown baseline 'svm'; expected one of \['knn', 'logreg', "):
        run_baseline(_cfg("digits"), "svm")
    with pytest.raises(ConfigError, match=r"'minirocket' does not apply to task 'digits' \(2d, classes outputs\); "
                                          r"expected one of \['knn', 'logreg'\]"):
        run_baseline(_cfg("digits"), "minirocket")
    with pytest.raises(ConfigError, match=r"expected one of \['mean', 'ridge'\]"):
        check_baseline("knn", "2d", "dense")


def test_lazy_exports_import_no_torch_or_sklearn() -> None:
    code = ("import sys, harness, harness.baselines; "
            "assert not {'torch', 'sklearn', 'aeon'} & set(sys.modules), sorted(sys.modules); "
            "print(harness.default_baselines('1d', 'classes'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['minirocket', 'knn']"
    assert {"run_baseline", "BASELINES", "default_baselines"} <= set(harness.__all__)
    assert harness.run_baseline is run_baseline and harness.BASELINES is BASELINES


# -- each baseline on a small task ---------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "baseline", "metric", "floor"), [
    ("digits", "knn", "accuracy", 0.9),
    ("digits", "logreg", "accuracy", 0.9),
    ("synthetic-1d", "minirocket", "accuracy", 0.9),
    ("synthetic-1d", "knn", "accuracy", 0.9),
    (ITALY, "minirocket", "accuracy", 0.9),
    (ITALY, "knn", "accuracy", 0.85),
    ("deepsea", "logreg-multilabel", "auroc", 0.8),
])
def test_baseline_scores_its_task(nasbench_dir: str, task: str, baseline: str, metric: str, floor: float) -> None:
    calls: list[tuple[int, float]] = []
    r = run_baseline(_cfg(task, data_dir=nasbench_dir, max_train_samples=300, max_test_samples=300), baseline,
                     on_epoch=lambda e, v: calls.append((e, v)))
    result = TrialResult(**r)  # exactly the TrialResult fields
    assert (result.metric, result.direction) == (metric, "maximize")
    assert floor < result.test_score <= 1.0 and 0.0 <= result.val_score <= 1.0
    assert calls == [(1, result.val_score)] and result.val_curve == [result.val_score] and result.best_epoch == 1
    assert math.isnan(result.otdd_before) and math.isnan(result.otdd_after) and result.otdd_curve == []
    assert result.trainable_params == 0 and result.device == "cpu" and result.peak_mem_mb > 0
    assert set(result.seconds) == {"load", "fit", "evaluate", "total"}
    assert result.config == _cfg(task, data_dir=nasbench_dir, max_train_samples=300, max_test_samples=300).to_dict()
    assert "torch" in result.versions and "scikit-learn" in result.versions and "aeon" in result.versions
    assert result.details["baseline"] == baseline and result.details["test_metrics"][metric] == result.test_score
    if baseline.startswith("logreg"):
        assert result.details["params"]["C"] in (0.01, 0.1, 1.0, 10.0) and len(result.details["tuning"]) == 4
        assert result.val_score == max(result.details["tuning"].values())


def test_dense_ridge_beats_the_mean_map(nasbench_dir: str) -> None:
    cfg = _cfg("darcy-flow", data_dir=nasbench_dir)
    ridge, mean = run_baseline(cfg, "ridge"), run_baseline(cfg, "mean")
    for r in (ridge, mean):
        assert (r[contract.METRIC], r[contract.DIRECTION], r[contract.MODALITY]) == ("rel_l2", "minimize", "2d")
        assert r[contract.DETAILS]["target_shape"] == [9, 9] and r[contract.DETAILS]["n_test"] == 12
    assert 0 < ridge[contract.TEST_SCORE] < 0.5 * mean[contract.TEST_SCORE]
    assert ridge[contract.VAL_SCORE] == min(ridge[contract.DETAILS]["tuning"].values())
    assert mean[contract.DETAILS]["params"] == {"strategy": "mean"}


# -- the splits are run_trial's ------------------------------------------------------------------------------


def test_splits_are_those_of_run_trial(tiny_body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrialConfig().override({
        "task": "digits", "seed": 3, "data.max_train_samples": 200, "data.max_test_samples": 100,
        "body.path": tiny_body, "embedder.epochs": 0, "embedder.samples": 64, "embedder.proxy_samples": 100,
        "embedder.proxy_classes": 4, "finetune.epochs": 1, "finetune.batch_size": 64,
    })
    seen = []
    knn = BASELINES["knn"]

    def spy(task, metric, seed):  # noqa: ANN001, ANN202 - the FitPredict signature
        seen.append(task)
        return knn.fit(task, metric, seed)

    monkeypatch.setitem(BASELINES, "knn", dataclasses.replace(knn, fit=spy))
    r = run_baseline(cfg, "knn")
    trial = run_trial(cfg)
    for n in ("n_train", "n_val", "n_test"):
        assert r[contract.DETAILS][n] == trial.details[n]
    assert r[contract.DETAILS]["n_test"] == 100
    ours, theirs = seen[0], build_parts(cfg, torch.device("cpu"), with_proxy=False).task
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        torch.testing.assert_close(getattr(ours, split), getattr(theirs, split), rtol=0, atol=0)
    assert (r[contract.METRIC], r[contract.DIRECTION]) == (trial.metric, trial.direction)


# -- determinism ---------------------------------------------------------------------------------------------


def _scores(r: dict[str, Any]) -> tuple[Any, ...]:
    return r[contract.TEST_SCORE], r[contract.VAL_SCORE], r[contract.DETAILS]["params"], r[contract.DETAILS]["tuning"]


@pytest.mark.parametrize(("task", "baseline"), [(ITALY, "minirocket"), ("digits", "logreg"), ("digits", "knn")])
def test_same_seed_same_result(task: str, baseline: str) -> None:
    a, b = (run_baseline(_cfg(task, seed=1, max_train_samples=300, max_test_samples=300), baseline) for _ in "ab")
    assert _scores(a) == _scores(b)


def test_the_seed_reaches_the_split_and_the_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    seeds: list[int] = []
    real = BASELINES["minirocket"]

    def spy(task, metric, seed):  # noqa: ANN001, ANN202 - the FitPredict signature
        seeds.append(seed)
        return real.fit(task, metric, seed)

    monkeypatch.setitem(BASELINES, "minirocket", dataclasses.replace(real, fit=spy))
    runs = [run_baseline(_cfg(ITALY, seed=s, max_train_samples=60), "minirocket") for s in (0, 1)]
    assert seeds == [0, 1]
    assert _scores(runs[0]) != _scores(runs[1])
