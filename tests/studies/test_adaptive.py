"""Adaptive seeds: rounds recorded in the study, only the cells open hypotheses read, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest

from studies import SpecError, load_spec, run_study
from studies.engine._adaptive import rounds

TOY = "studies._testing:toy_trial"
SPEC: dict[str, Any] = {
    "name": "ad",
    "trial_fn": TOY,
    "tasks": ["t1", "t2"],
    "seeds": {"start": 3, "step": 2, "max": 12},
    "factors": {"method": ["a", "b", "same"]},
    "base": {"noise": 0.005},
    "hypotheses": [
        {"id": "b-helps", "kind": "helps", "factor": "method", "level": "b", "reference": "a"},
        {"id": "same-is-a", "kind": "no_change", "factor": "method", "level": "same", "reference": "a"},
    ],
}


def _complete_per_cell(url: str, name: str = "ad") -> Counter[str]:
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    return Counter(t.user_attrs["cell"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_seeds_mapping_declares_every_seed_and_records_the_design(write_spec: Any) -> None:
    spec = load_spec(write_spec(SPEC))
    assert spec.seeds == tuple(range(12)) and spec.adaptive is not None
    assert spec.adaptive.looks() == (3, 5, 7, 9, 11, 12)
    assert spec.to_dict()["adaptive"] == {"start": 3, "step": 2, "max": 12, "spending": "pocock"}


@pytest.mark.parametrize("seeds, extra, message", [
    ({"start": 2, "max": 10}, {}, "the first look needs at least 3 seeds"),
    ({"start": 3}, {}, "seeds.max: missing"),
    ({"start": 3, "max": 10, "stpe": 2}, {}, "did you mean step"),
    ({"start": 3, "max": 10, "spending": "linear"}, {}, "expected one of"),
    ({"start": 3, "max": 10}, {"hypotheses": [{"id": "o", "kind": "predicts", "x": "otdd_after"}]},
     "adaptive seeds run until the spec's hypotheses are decided"),
])
def test_bad_adaptive_seeds_name_the_fix(write_spec: Any, seeds: Any, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec({**SPEC, "seeds": seeds, **extra}))


def test_rounds_open_only_the_cells_an_open_hypothesis_reads(write_spec: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = run_study(load_spec(write_spec(SPEC)), storage=url, workers=2, progress=False)
    study = optuna.load_study(study_name="ad", storage=url)
    recorded = rounds(study.user_attrs)
    assert recorded[0]["seeds"] == [0, 1, 2] and len(recorded[0]["cells"]) == 18
    assert recorded[0]["decided"]["b-helps"]["verdict"] == "supported"  # +0.05 at noise 0.005: look 1
    assert recorded[-1]["final"] is True and recorded[-1]["open"] == []
    later = [json.loads(key) for r in recorded[1:] for key in r["cells"]]
    assert later and {c["method"] for c in later} == {"a", "same"}  # b is decided: its cells get no more seeds
    assert recorded[-1]["decided"]["same-is-a"]["verdict"] == "supported"
    counts = _complete_per_cell(url)
    assert set(counts.values()) == {1} and len(counts) == report.total == report.complete
    assert report.total < 2 * 3 * 12  # fewer than the fixed max-seed design


def test_adaptive_needs_hypotheses_on_the_command_line_too(tmp_path: Path, cli_env: dict[str, str],
                                                           write_spec: Any) -> None:
    spec = write_spec({k: v for k, v in {**SPEC, "seeds": [0, 1]}.items() if k != "hypotheses"})
    run = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(spec), "--adaptive", "--max-seeds", "8",
                          "--storage", f"sqlite:///{tmp_path / 's.db'}"], env=cli_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "adaptive seeds run until the spec's hypotheses are decided" in run.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.mark.slow
def test_a_killed_adaptive_run_resumes_at_its_round_and_runs_each_cell_once(tmp_path: Path, cli_env: dict[str, str],
                                                                            write_spec: Any) -> None:
    path = write_spec(SPEC)
    url = f"journal:///{tmp_path / 'ad.log'}"
    command = [sys.executable, "-m", "studies.cli", "run", str(path), "--storage", url, "--workers", "2",
               "--no-progress"]
    slow = {**cli_env, "ORCA_ABLATE_FAKE_SECONDS": "0.4"}
    victim = subprocess.Popen(command, env=slow, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill it inside the second round
            time.sleep(0.3)
            try:
                study = optuna.load_study(study_name="ad", storage=optuna.storages.JournalStorage(
                    optuna.storages.journal.JournalFileBackend(str(tmp_path / "ad.log"))))
            except (KeyError, FileNotFoundError, ValueError):
                continue
            if len(rounds(study.user_attrs)) >= 2 and sum(_complete_per_cell_storage(study).values()) > 19:
                break
        os.killpg(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(timeout=30)
    resumed = subprocess.run(command, env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name="ad", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "ad.log"))))
    recorded = rounds(study.user_attrs)
    assert recorded[-1]["final"] is True
    counts = _complete_per_cell_storage(study)
    opened = {key for r in recorded for key in r["cells"]}
    assert set(counts) == opened and set(counts.values()) == {1}  # every started cell COMPLETE exactly once
    # The same rounds as an uninterrupted run: a look is a function of the finished trials.
    clean = tmp_path / "clean"
    clean.mkdir()
    run_study(load_spec(path), storage=f"sqlite:///{clean / 's.db'}", workers=2, progress=False)
    reference = rounds(optuna.load_study(study_name="ad", storage=f"sqlite:///{clean / 's.db'}").user_attrs)
    assert [r["cells"] for r in recorded] == [r["cells"] for r in reference]
    assert [r["decided"] for r in recorded] == [r["decided"] for r in reference]


def _complete_per_cell_storage(study: optuna.Study) -> Counter[str]:
    return Counter(t.user_attrs["cell"] for t in study.get_trials(deepcopy=False)
                   if t.state == optuna.trial.TrialState.COMPLETE)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_workers_advance_the_rounds(kind: str, tmp_path: Path, cli_env: dict[str, str], write_spec: Any,
                                    request: pytest.FixtureRequest) -> None:
    path = write_spec(SPEC)
    url = f"journal:///{tmp_path / 'ad.log'}" if kind == "journal" else request.getfixturevalue("pg_url")
    prepare = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(path), "--storage", url,
                              "--workers", "0"], env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert prepare.returncode == 0, prepare.stderr
    workers = [subprocess.Popen([sys.executable, "-m", "studies.cli", "worker", "--storage", url, "--study", "ad",
                                 "--no-progress", "--grace-period", "5"], env=cli_env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    storage = (optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "ad.log")))
               if kind == "journal" else url)
    study = optuna.load_study(study_name="ad", storage=storage)
    recorded = rounds(study.user_attrs)
    assert recorded[-1]["final"] is True and len(recorded) >= 2
    counts = _complete_per_cell_storage(study)
    assert set(counts) == {key for r in recorded for key in r["cells"]} and set(counts.values()) == {1}
