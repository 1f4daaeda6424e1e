"""Synthetic trials with a known answer for the analysis tests: Optuna studies and tidy frames."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

Score = Callable[[str, int, Mapping[str, Any], np.random.Generator], float]


def build_study(
    path: Path,
    name: str = "s",
    *,
    tasks: Sequence[str] = ("ecg", "digits"),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    factors: Mapping[str, Sequence[Any]] | None = None,
    score: Score | None = None,
    modality: Mapping[str, str] | None = None,
    n_fail: int = 0,
    n_duplicates: int = 0,
    n_running: int = 0,
    with_cell: bool = True,
    record_factors: bool = True,
    artifact_dir: str | None = None,
    noise: float = 0.01,
    storage: str | None = None,
    hypotheses: Sequence[Mapping[str, Any]] | None = None,
    analysis: Mapping[str, Any] | None = None,
) -> str:
    """Return the storage URL of a new study: one COMPLETE trial per (task, seed, factor cell).

    ``storage`` defaults to a SQLite file in ``path``; a ``journal:///FILE`` URL writes a journal file.
    """
    factors = dict(factors or {"embedder.proxy": ["cifar", "fake"]})
    storage = storage or f"sqlite:///{path / (name + '.db')}"
    target: str | optuna.storages.BaseStorage = storage
    if storage.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        target = JournalStorage(JournalFileBackend(storage[len("journal://"):]))
    study = optuna.create_study(study_name=name, storage=target, direction="maximize")
    study.set_user_attr("factors", list(factors) if record_factors else None)
    spec: dict[str, Any] = {"name": name, "factors": {k: list(v) for k, v in factors.items()}}
    if hypotheses:
        spec["hypotheses"] = [dict(h) for h in hypotheses]
    if analysis:
        spec["analysis"] = dict(analysis)
    study.set_user_attr("spec", spec)
    if artifact_dir:
        study.set_user_attr("artifact_dir", artifact_dir)
    dists: dict[str, BaseDistribution] = {"task": CategoricalDistribution(list(tasks)),
                                          "seed": IntDistribution(min(seeds), max(seeds))}
    dists.update({k: CategoricalDistribution(list(v)) for k, v in factors.items()})
    rng = np.random.default_rng(123)
    modality = modality or {t: ("2d" if t in ("digits", "fashion") else "1d") for t in tasks}
    score = score or (lambda task, seed, cell, r: 0.7)
    trials = []
    for task, seed, *values in itertools.product(tasks, seeds, *factors.values()):
        cell_params = dict(zip(factors, values))
        params = {"task": task, "seed": seed, **cell_params}
        before = 10.0 + rng.normal()
        after = before * float(rng.uniform(0.2, 0.9))
        s = float(score(task, seed, cell_params, rng) + noise * rng.normal())
        attrs: dict[str, Any] = {
            "otdd_before": before, "otdd_after": after,
            "otdd_curve": [before, (before + after) / 2, after], "val_score": s, "test_score": s,
            "metric": "accuracy", "direction": "maximize", "modality": modality[task],
            "seconds": 1.0, "peak_mem_mb": 10.0,
        }
        if with_cell:
            attrs["cell"] = f"{task}|{sorted(cell_params.items())}|{seed}"
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=s, user_attrs=attrs,
                                                intermediate_values={0: s, 1: s}))
    extra = []
    for t in trials[:n_duplicates]:
        extra.append(optuna.trial.create_trial(params=t.params, distributions=dists, value=0.0,
                                               user_attrs=dict(t.user_attrs)))
    for t in trials[:n_fail]:
        extra.append(optuna.trial.create_trial(params=t.params, distributions=dists, state=TrialState.FAIL,
                                               user_attrs={"error": "RuntimeError: out of memory"}))
    for t in trials[:n_running]:
        extra.append(optuna.trial.create_trial(params=t.params, distributions=dists, state=TrialState.RUNNING))
    study.add_trials(trials + extra)
    return storage


def trials_frame(
    *,
    tasks: Sequence[str] = ("ecg",),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    factors: Mapping[str, Sequence[Any]] | None = None,
    score: Score | None = None,
    modality: Mapping[str, str] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Return a tidy trials frame (as load_trials gives) without going through storage."""
    factors = dict(factors or {"embedder.proxy": ["cifar", "fake"]})
    rng = np.random.default_rng(seed)
    score = score or (lambda task, s, cell, r: 0.7)
    modality = modality or {t: ("2d" if t in ("digits", "fashion") else "1d") for t in tasks}
    rows = []
    for i, (task, s, *values) in enumerate(itertools.product(tasks, seeds, *factors.values())):
        cell = dict(zip(factors, values))
        before = 10.0 + rng.normal()
        after = before * float(rng.uniform(0.2, 0.9))
        value = float(score(task, s, cell, rng) + noise * rng.normal())
        rows.append({"trial": i, "task": task, "seed": s, **cell, "modality": modality[task], "direction": "maximize",
                     "otdd_before": before, "otdd_after": after, "val_score": value, "test_score": value,
                     "value": value, "seconds": 1.0})
    frame = pd.DataFrame(rows)
    frame.attrs["factors"] = list(factors)
    frame.attrs["spec"] = {"factors": {k: list(v) for k, v in factors.items()}}
    return frame
