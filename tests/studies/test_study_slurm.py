"""Clusters for real: Slurm job arrays of workers (journal file and PostgreSQL), and workers on other hosts.

The Slurm tests need the single-node cluster that ``.ci/slurm-up`` starts (CI runs
it); outside CI they skip when ``sbatch`` is missing. Other hosts are emulated
with ``unshare --uts`` (a UTS namespace per worker with its own host name).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from harness.contract import CELL, OWNER_HOST, SLOT, STALE
from studies import StudySpec, expand_cells, run_study
from studies.cli import main
from studies.engine._gpus import assign_gpus, visible_gpus
from studies.engine._slurm import SlurmRequest, recorded_submissions, sbatch_script
from studies.storage import open_storage

FAKE = "studies._testing:fake_trial"
SPEC = {"name": "cluster", "tasks": ["digits"], "seeds": [0, 1, 2], "factors": {"embedder.epochs": [0, 2]}}
"""6 cells."""


def _exactly_once(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    trials = optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()
    complete = sorted((t.user_attrs[CELL], t.user_attrs[SLOT]) for t in trials if t.state == TrialState.COMPLETE)
    assert complete == sorted(c.ident for c in expand_cells(StudySpec.from_dict(SPEC)))
    return trials


def _wait_complete(storage: str, name: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        trials = optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()
        if sum(t.state == TrialState.COMPLETE for t in trials) >= 6:
            return
        time.sleep(1)
    pytest.fail(f"the study did not complete within {timeout:.0f} s: "
                f"{[(t.number, t.state.name) for t in trials]}")


def _wait_running(storage: str, name: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        trials = optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()
        if any(t.state == TrialState.RUNNING for t in trials):
            return
        time.sleep(0.2)
    pytest.fail("no attempt started")


# -- unit: the script and the GPU assignment -----------------------------------------------------

def test_sbatch_script_runs_one_worker_per_array_task(tmp_path: Path) -> None:
    request = SlurmRequest(4, partition="gpu", time="02:00:00", cpus_per_worker=8, gpus_per_worker=1, mem="32G",
                           requeue=True, sbatch_args=("--qos=long",), log_dir=tmp_path)
    script = sbatch_script(request, storage="postgresql://u@db/orca", study_name="proxy", python="/venv/python")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ("#SBATCH --array=0-3", "#SBATCH --cpus-per-task=8", "#SBATCH --partition=gpu",
                 "#SBATCH --time=02:00:00", "#SBATCH --mem=32G", "#SBATCH --gpus-per-task=1", "#SBATCH --requeue",
                 "#SBATCH --qos=long", f"#SBATCH --output={tmp_path}/%x-%A_%a.out"):
        assert line in lines, line
    assert lines[-1] == ("exec /venv/python -m studies.cli worker --storage postgresql://u@db/orca --study-name proxy "
                         "--max-retries 1 --no-progress")


@pytest.mark.parametrize("bad", [{"array": 0}, {"cpus_per_worker": 0}, {"gpus_per_worker": -1},
                                 {"sbatch_args": ("qos=long",)}])
def test_bad_slurm_requests_name_the_option(bad: dict[str, Any]) -> None:
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="--"):
        SlurmRequest(**{"array": 2, **bad})


def test_gpus_round_robin_and_packing() -> None:
    from harness.errors import ConfigError

    assert assign_gpus(3, []) == [None, None, None]
    assert assign_gpus(4, ["0", "1"], per_gpu=2) == ["0", "1", "0", "1"]
    assert assign_gpus(2, ["5", "7"]) == ["5", "7"]
    with pytest.raises(ConfigError, match="at most 2 workers; raise --workers-per-gpu"):
        assign_gpus(3, ["0", "1"])
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_too_many_workers_for_the_gpus_is_refused_before_the_study_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = tmp_path / "s.yaml"
    spec.write_text("name: g\ntasks: [digits]\nseeds: [0]\n")
    assert main(["run", str(spec), "--storage", url, "--workers", "2", "--trial-fn", FAKE]) == 2
    assert "--workers 2 on 1 GPU(s) (0)" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


# -- many hosts on one journal file --------------------------------------------------------------

def _worker_on_host(host: str, storage: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "studies.cli", "worker", "--storage", storage, "--study-name", "cluster",
               "--grace-period", "4", "--heartbeat-interval", "0.5", "--no-progress", "--trial-fn", FAKE]
    shell = f"hostname {host} && exec " + " ".join(command)
    return subprocess.Popen(["unshare", "--uts", "sh", "-c", shell], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_workers_on_different_hosts_share_a_journal_and_survive_a_sigkill(
        tmp_path: Path, cli_env: dict[str, str], require: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    require(shutil.which("unshare") is not None and os.geteuid() == 0, "needs unshare --uts as root")
    monkeypatch.setattr("studies.engine._runner.POLL_INTERVAL_S", 0.5)
    storage = f"journal:///{tmp_path / 'shared' / 'study.log'}"
    (tmp_path / "shared").mkdir()
    run_study(StudySpec.from_dict(SPEC), storage=storage, workers=0, progress=False)
    env = {**cli_env, "ORCA_ABLATE_FAKE_SECONDS": "2", "ORCA_ABLATE_FAKE_EPOCHS": "2"}
    doomed = _worker_on_host("host-a", storage, env)
    _wait_running(storage, "cluster")
    survivor = _worker_on_host("host-b", storage, env)
    time.sleep(1.0)
    os.killpg(doomed.pid, signal.SIGKILL)  # host-a's attempt stays RUNNING: only its silence shows it is dead
    doomed.wait(timeout=10)
    assert survivor.wait(timeout=120) == 0
    trials = _exactly_once(storage, "cluster")
    hosts = {t.user_attrs[OWNER_HOST] for t in trials}
    assert hosts == {"host-a", "host-b"}
    stale = [t for t in trials if t.user_attrs.get(STALE)]
    assert len(stale) == 1 and stale[0].user_attrs[OWNER_HOST] == "host-a"
    assert "no heartbeat for" in stale[0].user_attrs["error"]  # another host's pid is not looked at


# -- real Slurm ----------------------------------------------------------------------------------

@pytest.fixture
def slurm(require: Any) -> None:
    """A reachable Slurm controller (``.ci/slurm-up``); fails in CI when there is none."""
    tools = all(shutil.which(t) for t in ("sbatch", "squeue", "scancel", "sinfo"))
    up = tools and subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    require(bool(up), "no Slurm cluster here: run .ci/slurm-up (as root)")


def _array_tasks(job: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i %T"], capture_output=True, text=True,
                         timeout=20).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_slurm_array_finishes_every_cell_once_after_a_task_is_cancelled(
        backend: str, slurm: None, tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> None:
    storage = str(request.getfixturevalue("pg_url")) if backend == "postgres" else str(tmp_path / "study.log")
    for key, value in {**cli_env, "ORCA_ABLATE_TRIAL_FN": FAKE, "ORCA_ABLATE_FAKE_SECONDS": "2",
                       "ORCA_ABLATE_FAKE_EPOCHS": "2"}.items():
        monkeypatch.setenv(key, value)  # sbatch hands the submitting environment to the job
    spec = tmp_path / "cluster.yaml"
    spec.write_text("name: cluster\ntasks: [digits]\nseeds: [0, 1, 2]\nfactors: {embedder.epochs: [0, 2]}\n")
    start = time.monotonic()
    assert main(["submit", str(spec), "--slurm", "--array", "2", "--storage", storage,
                 "--log-dir", str(tmp_path / "logs"), "--max-retries", "2"]) == 0
    out = capsys.readouterr().out
    job = out.split("submitted job array ")[1].split(":")[0]
    assert "6 of 6 cells to run" in out and f"scancel {job}" in out
    _wait_running(storage, "cluster", timeout=90)
    time.sleep(1.0)
    subprocess.run(["scancel", f"{job}_0"], check=True, timeout=20)  # SIGTERM: its attempt is marked stale
    _wait_complete(storage, "cluster", timeout=240)
    trials = _exactly_once(storage, "cluster")
    seconds = time.monotonic() - start
    stale = [t for t in trials if t.user_attrs.get(STALE)]
    study = optuna.load_study(study_name="cluster", storage=open_storage(storage))
    assert [s["job_id"] for s in recorded_submissions(study)] == [job]
    assert main(["status", "--storage", storage, "--study", "cluster"]) == 0
    assert f"job {job} (2 tasks" in capsys.readouterr().out
    print(f"slurm {backend}: 6 cells, 2 array tasks, 1 cancelled, {len(stale)} stale attempt(s), duplicates 0, "
          f"{seconds:.0f} s")
    subprocess.run(["scancel", job], timeout=20)
    assert _array_tasks(job).get(f"{job}_0") in (None, "CANCELLED")
