"""Benchmark: load a synthetic 5,000-trial study, run every analysis test, write the report.

Usage: ``python bench/analysis.py [--seeds 17] [--n-resamples 9999] [--keep DIR] [--public-build]``.
The study (4 tasks × 5 factors, 72 cells a task, ``--seeds`` seeds, plus FAIL and duplicate
trials) is written to a SQLite file in a temporary directory; building it is not timed. Prints the
seconds of each phase; the target for the whole report is < 30 s on 2 cores.

``Study.add_trials`` adds trials one by one (~30 SQL statements each: 5,000 trials take 4–6 min
here), so by default the frozen trials are bulk-inserted into Optuna's own tables in one
transaction, and the result is checked by reading the study back through the public API.
``--public-build`` uses ``add_trials`` instead.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# Run as a script, this file's own folder comes first on sys.path and its name would shadow the
# `analysis` package; put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(_ROOT)

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from optuna.distributions import (  # noqa: E402
    BaseDistribution,
    CategoricalDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

import analysis  # noqa: E402
from harness import contract  # noqa: E402

TASKS = {"ecg": "1d", "crop": "1d", "digits": "2d", "fashion": "2d"}
FACTORS: dict[str, list[Any]] = {
    "embedder.proxy": ["cifar", "fake"],
    "embedder.epochs": [0, 5, 20],
    "finetune.freeze": ["none", "embedder", "body"],
    "body.pretrained": [True, False],
    "embedder.init": ["normal", "xavier"],
}


def _score(task: str, seed: int, cell: dict[str, Any], rng: np.random.Generator) -> float:
    base = {"ecg": 0.80, "crop": 0.70, "digits": 0.93, "fashion": 0.85}[task]
    epochs = cell["embedder.epochs"]
    if TASKS[task] == "1d":
        base += 0.03 if epochs == 5 else 0.025 if epochs == 20 else 0.0
    if cell["finetune.freeze"] == "body":
        base -= 0.15
    return float(base + 0.01 * rng.normal() + 0.002 * (seed % 3))


def _bulk_insert(storage_url: str, study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Insert frozen trials into a fresh RDB study in one transaction (bench-only; private schema)."""
    from optuna.storages._rdb import models
    from sqlalchemy import create_engine, insert

    study_id = study._study_id
    now = datetime.now()
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in ("trials", "params", "values", "attrs", "steps")}
    for number, t in enumerate(trials):
        trial_id = number + 1
        rows["trials"].append({"trial_id": trial_id, "number": number, "study_id": study_id, "state": t.state,
                               "datetime_start": now, "datetime_complete": now})
        for name, value in t.params.items():
            dist = t.distributions[name]
            rows["params"].append({"trial_id": trial_id, "param_name": name,
                                   "param_value": dist.to_internal_repr(value),
                                   "distribution_json": distribution_to_json(dist)})
        if t.value is not None:
            value, kind = models.TrialValueModel.value_to_stored_repr(t.value)
            rows["values"].append({"trial_id": trial_id, "objective": 0, "value": value, "value_type": kind})
        for key, value in t.user_attrs.items():
            rows["attrs"].append({"trial_id": trial_id, "key": key, "value_json": json.dumps(value)})
        for step, value in t.intermediate_values.items():
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
            rows["steps"].append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                                  "intermediate_value_type": kind})
    tables = {"trials": models.TrialModel, "params": models.TrialParamModel, "values": models.TrialValueModel,
              "attrs": models.TrialUserAttributeModel, "steps": models.TrialIntermediateValueModel}
    engine = create_engine(storage_url)
    with engine.begin() as conn:
        for key, model in tables.items():
            if rows[key]:
                conn.execute(insert(model.__table__), rows[key])
    engine.dispose()


def build(path: Path, seeds: int, n_fail: int = 60, n_duplicates: int = 44,
          public: bool = False) -> tuple[str, int]:
    """Return ``(storage URL, number of trials)`` of a new synthetic study in ``path``."""
    storage = f"sqlite:///{path / 'bench.db'}"
    study = optuna.create_study(study_name="bench", storage=storage, direction="maximize")
    study.set_user_attr(contract.FACTORS, list(FACTORS))
    study.set_user_attr(contract.SPEC, {"name": "bench", "factors": FACTORS})
    dists: dict[str, BaseDistribution] = {contract.PARAM_TASK: CategoricalDistribution(list(TASKS)),
                                          contract.PARAM_SEED: IntDistribution(0, seeds - 1)}
    dists.update({k: CategoricalDistribution(v) for k, v in FACTORS.items()})
    rng = np.random.default_rng(0)
    trials: list[FrozenTrial] = []
    for task, seed, *values in itertools.product(TASKS, range(seeds), *FACTORS.values()):
        cell = dict(zip(FACTORS, values))
        before = 50.0 + 5 * rng.normal()
        curve = list(before * np.exp(-0.2 * np.arange(cell["embedder.epochs"] + 1)))
        score = _score(task, seed, cell, rng)
        attrs = {contract.OTDD_BEFORE: before, contract.OTDD_AFTER: curve[-1], contract.OTDD_CURVE: curve,
                 contract.VAL_SCORE: score, contract.TEST_SCORE: score, contract.METRIC: "accuracy",
                 contract.DIRECTION: "maximize", contract.MODALITY: TASKS[task],
                 contract.CELL: f"{task}|{sorted(cell.items())}|{seed}", contract.SECONDS: 10.0,
                 contract.PEAK_MEM_MB: 500.0}
        params = {contract.PARAM_TASK: task, contract.PARAM_SEED: seed, **cell}
        trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=score, user_attrs=attrs,
                                                intermediate_values={e: score for e in range(3)}))
    extra = [optuna.trial.create_trial(params=t.params, distributions=dists, value=0.0, user_attrs=t.user_attrs)
             for t in trials[:n_duplicates]]
    extra += [optuna.trial.create_trial(params=t.params, distributions=dists, state=TrialState.FAIL,
                                        user_attrs={contract.ERROR: "RuntimeError: CUDA out of memory"})
              for t in trials[n_duplicates:n_duplicates + n_fail]]
    everything = trials + extra
    if public:
        study.add_trials(everything)
    else:
        _bulk_insert(storage, study, everything)
        stored = optuna.load_study(study_name="bench", storage=storage).get_trials(deepcopy=False)
        if len(stored) != len(everything) or stored[0].params != everything[0].params:
            raise RuntimeError("bulk insert did not round-trip through Optuna; rerun with --public-build")
    return storage, len(everything)


class _Clock:
    """Wall and CPU seconds since the last lap."""

    @dataclass
    class Lap:
        wall: float
        cpu: float

        def __str__(self) -> str:
            return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self) -> _Clock.Lap:
        """Return the time since the previous lap and start a new one."""
        wall, cpu = time.perf_counter(), time.process_time()
        lap = _Clock.Lap(wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu
        return lap


def main() -> None:
    """Build the study, then time loading, the tests and the whole report; print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=17, help="seeds per cell (17 -> 5,000 trials)")
    parser.add_argument("--n-resamples", type=int, default=9999)
    parser.add_argument("--keep", type=Path, default=None, help="write the study and report here")
    parser.add_argument("--public-build", action="store_true", help="build with Study.add_trials (slow)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        storage, n = build(root, args.seeds, public=args.public_build)
        print(f"built {n} trials in {time.perf_counter() - t0:.1f} s (not timed)")
        clock = _Clock()
        data = analysis.load_study(storage, "bench")
        t_load = clock.lap()
        tests = analysis.run_all_tests(data.trials, random_state=0, n_resamples=args.n_resamples)
        t_tests = clock.lap()
        path = analysis.write_report(storage, "bench", root / "report", random_state=0,
                                     n_resamples=args.n_resamples)
        t_report = clock.lap()
        print(f"load_study: {t_load} ({len(data.trials)} kept, summary "
              f"{dict(zip(data.summary['state'], data.summary['count']))})")
        print(f"run_all_tests: {t_tests} ({len(tests)} rows, n_resamples={args.n_resamples})")
        print(f"write_report end to end (load + tests + figures + render): {t_report} -> {path}")
        print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(wall time inflates when others share the cores; CPU time does not)")
        print(f"target < 30 s for the report: {'met' if t_report.wall < 30 else 'MISSED'} by wall time, "
              f"{'met' if t_report.cpu < 30 else 'MISSED'} by CPU time")


if __name__ == "__main__":
    main()
