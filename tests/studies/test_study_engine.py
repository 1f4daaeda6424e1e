"""The engine on every storage: each cell COMPLETE exactly once, resume, retry, extension, staleness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import studies.engine._runner
import studies.engine._workers
from studies import SpecError, StudySpec, expand_cells, open_storage, run_study, study_status
from studies.engine._attempts import Owner, claim

FAKE = "studies._testing:fake_trial"
COUNTING = "studies._testing:counting_trial"


def _run(spec: StudySpec, storage: str, **kwargs: Any) -> studies.StudyReport:
    """Run with fake trials, in this process unless ``workers`` says otherwise (spawned workers import torch)."""
    kwargs.setdefault("trial_fn", FAKE)
    kwargs.setdefault("inline", "workers" not in kwargs)
    return run_study(spec, storage=storage, progress=False, **kwargs)


def _trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def _assert_exactly_once(storage: str, spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    trials = _trials(storage, spec.name)
    complete = [(t.user_attrs["cell"], t.user_attrs["slot"]) for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(c.ident for c in expand_cells(spec))
    return trials


def _calls(markers: Path) -> int:
    return len(list(markers.glob("call-*")))


@pytest.mark.slow  # spawns worker processes, which import torch through harness
def test_two_workers_complete_every_cell_once(storage: str, fake_env: Path, small: dict[str, Any]) -> None:
    spec = StudySpec.from_dict(small)
    report = _run(spec, storage, workers=2, trial_fn=COUNTING)
    assert report.exit_code == 0 and report.complete == report.total == 16
    assert _calls(fake_env) == 16  # nothing ran twice
    trials = _assert_exactly_once(storage, spec)
    assert len(trials) == 16
    trial = trials[0]
    assert set(trial.params) == {"task", "embedder.epochs", "finetune.freeze", "seed"}
    assert trial.intermediate_values == {1: pytest.approx(trial.user_attrs["val_score"] / 3, abs=1e-6),
                                         2: pytest.approx(trial.user_attrs["val_score"] * 2 / 3, abs=1e-6),
                                         3: trial.user_attrs["val_score"]}
    assert trial.value == trial.user_attrs["test_score"]
    for key in ("otdd_before", "otdd_after", "otdd_curve", "val_score", "test_score", "metric", "direction",
                "modality", "cell", "config", "seconds", "peak_mem_mb", "versions", "heartbeat",
                "owner_host", "owner_pid", "worker_pid"):
        assert key in trial.user_attrs, key
    assert isinstance(trial.user_attrs["seconds"], float)
    assert trial.user_attrs["config"]["finetune"]["epochs"] == 3
    assert trial.user_attrs["worker_pid"] != os.getpid() and trial.user_attrs["owner_pid"] == os.getpid()
    assert json.loads(trial.user_attrs["cell"])["task"] == trial.params["task"]
    study = optuna.load_study(study_name=spec.name, storage=open_storage(storage))
    assert study.user_attrs["factors"] == ["embedder.epochs", "finetune.freeze"]
    assert StudySpec.from_dict(study.user_attrs["spec"]) == spec
    assert {t.user_attrs["worker_pid"] for t in trials} <= {t.user_attrs["details"]["pid"] for t in trials}
    threads = str(max(1, studies.engine._workers.cpu_cores() // 2))  # torch threads split between the 2 workers
    assert {t.user_attrs["details"]["threads"] for t in trials} == {threads}


def test_resume_skips_finished_cells(storage: str, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"])
    spec = StudySpec.from_dict(small)
    _run(spec, storage, trial_fn=COUNTING)
    again = _run(spec, storage, trial_fn=COUNTING)
    assert again.exit_code == 0 and again.ran == 0
    assert _calls(fake_env) == 4 and len(_trials(storage, spec.name)) == 4


def test_failed_attempt_is_retried(storage: str, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"])
    spec = StudySpec.from_dict(small)
    report = _run(spec, storage, trial_fn="studies._testing:flaky_trial", max_retries=1)
    assert report.exit_code == 0
    trials = _assert_exactly_once(storage, spec)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 4 and all(t.user_attrs["error"].startswith("RuntimeError: flaky failure") for t in failed)


def test_cell_failing_after_retries_is_reported_then_retried_next_run(storage: str, fake_env: Path,
                                                                       small: dict[str, Any]) -> None:
    small.update(tasks=["digits"], factors={"embedder.epochs": [0, 2]})
    spec = StudySpec.from_dict(small)
    report = _run(spec, storage, trial_fn="studies._testing:always_failing_trial", max_retries=2)
    assert report.exit_code == 1 and report.complete == 2
    assert len(report.failed) == 2 and report.failed[0].attempts == 3
    assert report.failed[0].error == "ValueError: seed 1 always fails"
    assert "2 cells failed after their retries" in report.summary()
    status = study_status(storage, spec.name)
    assert status.counts() == {"complete": 2, "running": 0, "failed": 2, "waiting": 0}
    assert _run(spec, storage, trial_fn=FAKE, max_retries=0).exit_code == 0  # re-running retries them
    _assert_exactly_once(storage, spec)


def test_nan_metric_fails_the_attempt(tmp_path: Path, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"], factors={})
    spec = StudySpec.from_dict(small)
    url = f"sqlite:///{tmp_path / 'nan.db'}"
    report = _run(spec, url, trial_fn="studies._testing:nan_trial", max_retries=0)
    assert report.exit_code == 1
    assert "metric test_score is nan, not a finite number" in report.failed[0].error


def test_extension_runs_only_new_cells(storage: str, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"], factors={"embedder.epochs": [0, 2], "finetune.freeze": ["none"]})
    first = StudySpec.from_dict(small)
    _run(first, storage, trial_fn=COUNTING)
    before = {t.number: (t.user_attrs["cell"], t.value) for t in _trials(storage, first.name)}
    small["seeds"] = [0, 1]
    small["factors"]["embedder.epochs"] = [0, 2, 8]
    small["tasks"] = ["digits", "synthetic-1d"]
    bigger = StudySpec.from_dict(small)
    report = _run(bigger, storage, trial_fn=COUNTING)
    assert report.exit_code == 0 and report.total == 2 * 3 * 1 * 2
    assert _calls(fake_env) == report.total  # the 8 old cells did not run again
    trials = _assert_exactly_once(storage, bigger)
    assert {t.number: (t.user_attrs["cell"], t.value) for t in trials if t.number in before} == before
    assert trials[0].distributions["seed"].choices == (0, 1)
    names = optuna.get_all_study_names(open_storage(storage))
    assert names == [first.name]  # the temporary copy is gone


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["factors"].update({"finetune.optimizer": s["factors"].pop("finetune.freeze")}),
     "factors: study 'small' varies ['embedder.epochs', 'finetune.freeze'], this spec varies "
     "['embedder.epochs', 'finetune.optimizer'] (added ['finetune.optimizer'], removed ['finetune.freeze'])"),
    (lambda s: s["base"].update({"finetune.epochs": 5}),
     "base: differs from study 'small' at finetune.epochs (study: 3, this spec: 5)"),
    (lambda s: s["factors"].update({"embedder.epochs": [0]}),
     "factors.embedder.epochs: study 'small' has [0, 2]; a spec may add values but not drop [2]"),
    (lambda s: s.update(metric="val_score"), "metric: study 'small' uses 'test_score', this spec 'val_score'"),
])
def test_incompatible_change_is_refused(tmp_path: Path, fake_env: Path, small: dict[str, Any],
                                        change: Any, message: str) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    small.update(seeds=[0], tasks=["digits"], factors={"embedder.epochs": [0, 2], "finetune.freeze": ["none"]})
    _run(StudySpec.from_dict(small), url)
    change(small)
    with pytest.raises(SpecError) as info:
        _run(StudySpec.from_dict(small), url)
    assert message in str(info.value) and "--study-name" in str(info.value)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _fake_running_attempt(url: str, spec: StudySpec, index: int, owner: Owner, beat_age: float = 0.0) -> int:
    """Create a RUNNING attempt at cell ``index`` owned by ``owner``; return its trial number."""
    storage = open_storage(url)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    cell = expand_cells(spec)[index]
    trial_id = claim(storage, study._study_id, cell, config=cell.config(spec).to_dict(),
                     distributions=studies.param_distributions(spec), owner=owner)
    storage.set_trial_user_attr(trial_id, "heartbeat", time.time() - beat_age)
    return storage.get_trial(trial_id).number


def test_dead_owner_on_this_host_is_stale_at_once(storage: str, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"])
    spec = StudySpec.from_dict(small)
    _run(spec, storage, trial_fn=FAKE)  # creates the study; then pretend a killed run left two attempts
    small["seeds"] = [0, 1]
    spec = StudySpec.from_dict(small)
    from studies.storage import prepare_study

    prepare_study(open_storage(storage), spec, spec.name)
    dead = _fake_running_attempt(storage, spec, 4, Owner(socket.gethostname(), _dead_pid(), None))
    orphan = _fake_running_attempt(storage, spec, 5, Owner(socket.gethostname(), os.getppid(), _dead_pid()))
    report = _run(spec, storage, max_retries=0)
    assert report.exit_code == 0 and sorted(report.stale) == sorted([dead, orphan])
    trials = _assert_exactly_once(storage, spec)
    stale = [t for t in trials if t.user_attrs.get("stale")]
    assert {t.number for t in stale} == {dead, orphan} and all(t.state == TrialState.FAIL for t in stale)
    assert "is gone" in stale[0].user_attrs["error"]


def test_other_host_is_stale_after_grace_period(tmp_path: Path, fake_env: Path, small: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(studies.engine._runner, "POLL_INTERVAL_S", 0.2)
    small.update(seeds=[0], tasks=["digits"], factors={})
    spec = StudySpec.from_dict(small)
    url = f"sqlite:///{tmp_path / 'grace.db'}"
    from studies.storage import prepare_study

    prepare_study(open_storage(url), spec, spec.name)
    silent = _fake_running_attempt(url, spec, 0, Owner("elsewhere", 1, 1), beat_age=0.0)
    assert study_status(url, spec.name).counts()["running"] == 1
    start = time.monotonic()
    report = _run(spec, url, grace_period=1.5)  # waits for the other host, then takes over
    assert report.exit_code == 0 and report.stale == [silent]
    assert 1.0 < time.monotonic() - start < 10
    assert "no heartbeat for" in _trials(url, spec.name)[0].user_attrs["error"]


@pytest.mark.slow  # spawns worker processes, which import torch through harness
def test_killed_worker_is_rerun_without_counting(tmp_path: Path, fake_env: Path, small: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCA_ABLATE_FAKE_SECONDS", "0.6")
    small.update(seeds=[0], tasks=["digits"], factors={"embedder.epochs": [0, 2]})
    spec = StudySpec.from_dict(small)
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    killed: list[int] = []

    def kill_first_worker() -> None:
        storage = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            time.sleep(0.05)
            try:
                storage = storage or open_storage(url)
                study = optuna.load_study(study_name=spec.name, storage=storage)
            except Exception:  # noqa: BLE001 - the run is still creating the file or the study
                storage = None
                continue
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running:
                killed.append(running[0].user_attrs["worker_pid"])
                os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    report = _run(spec, url, max_retries=0, workers=1)
    killer.join()
    assert killed and report.exit_code == 0
    trials = _assert_exactly_once(storage=url, spec=spec)
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == 1 and stale[0].user_attrs["stale"] is True
    assert stale[0].user_attrs["error"] == f"stale: worker process {killed[0]} died (signal 9)"


def test_duplicate_complete_is_refused(tmp_path: Path, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"], factors={})
    spec = StudySpec.from_dict(small)
    url = f"sqlite:///{tmp_path / 'dup.db'}"
    _run(spec, url)
    storage = open_storage(url)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    runner = studies.engine._runner.Runner(storage, study, spec, workers=1, max_retries=0, trial_fn=FAKE,
                                     grace_period=600, heartbeat_interval=30, log=sys.stderr)
    cell = expand_cells(spec)[0]
    trial_id = claim(storage, study._study_id, cell, config={}, distributions=runner.distributions,
                     owner=Owner.here(1))
    from studies._testing import fake_result

    runner.finish(studies.engine._runner._Job(cell, trial_id, 1), fake_result(cell.config(spec)), 0.1)
    second = storage.get_trial(trial_id)
    assert second.state == TrialState.FAIL and second.user_attrs["error"] == "duplicate: cell already COMPLETE in trial 0"
    _assert_exactly_once(url, spec)


def test_search_tunes_within_each_cell(tmp_path: Path, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(seeds=[0], factors={}, metric="val_score", trials_per_cell=3,
                 search={"finetune.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                         "finetune.optimizer": {"choices": ["adamw", "sgd"]}})
    spec = StudySpec.from_dict(small)
    url = f"sqlite:///{tmp_path / 'search.db'}"
    assert _run(spec, url).exit_code == 0
    trials = _assert_exactly_once(url, spec)
    assert len(trials) == 6
    for trial in trials:
        assert 1e-4 <= trial.params["finetune.lr"] <= 1e-2
        assert trial.user_attrs["config"]["finetune"]["lr"] == trial.params["finetune.lr"]
        assert trial.value == trial.user_attrs["val_score"]
    assert len({t.params["finetune.lr"] for t in trials}) == 6


@pytest.mark.slow  # spawns worker processes, which import torch through harness
def test_unknown_trial_function_stops_the_run(tmp_path: Path, fake_env: Path, small: dict[str, Any]) -> None:
    spec = StudySpec.from_dict(small)
    for inline in (True, False):
        with pytest.raises(studies.WorkerError, match="cannot load the trial function 'studies._testing:nope'"):
            _run(spec, f"sqlite:///{tmp_path / 'x.db'}", trial_fn="studies._testing:nope", inline=inline)


def test_two_runs_on_one_study_share_the_cells(storage: str, fake_env: Path, small: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCA_ABLATE_FAKE_SECONDS", "0.15")
    monkeypatch.setattr(studies.engine._runner, "POLL_INTERVAL_S", 0.2)
    small.update(tasks=["digits"])
    spec = StudySpec.from_dict(small)
    from studies.storage import prepare_study

    prepare_study(open_storage(storage), spec, spec.name)  # both runs resume the same study
    reports: list[studies.StudyReport] = []
    runs = [threading.Thread(target=lambda: reports.append(_run(spec, storage, trial_fn=COUNTING)))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert [r.exit_code for r in reports] == [0, 0]
    _assert_exactly_once(storage, spec)
    assert sum(r.completed_now for r in reports) == 8
    assert _calls(fake_env) <= 8 + 2  # at most a claim race per run wastes one trial


def test_no_workers_creates_the_cells_and_runs_none(storage: str, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(tasks=["digits"], seeds=[0])
    spec = StudySpec.from_dict(small)
    report = run_study(spec, storage=storage, workers=0, trial_fn=COUNTING, progress=False)
    assert report.exit_code == 0 and report.ran == 0 and report.mode == "prepare"
    assert _trials(storage, spec.name) == [] and _calls(fake_env) == 0
    summary = report.summary()
    assert "0/4 cells complete, 4 to run; no trials were run (--workers 0)" in summary
    if storage.startswith("sqlite"):  # one writer: the hint is `run --workers K`, not `worker`
        assert "A SQLite file is written by one process" in summary and "orca-ablate worker" not in summary
    else:
        assert f"orca-ablate worker --storage {storage} --study-name small" in summary
    assert _run(spec, storage, trial_fn=COUNTING).exit_code == 0
    _assert_exactly_once(storage, spec)
