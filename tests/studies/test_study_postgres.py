"""Workers sharing a PostgreSQL study: every cell COMPLETE exactly once, killed workers, dropped connections.

Each test gets a fresh database (the ``pg_url`` fixture) and drops it. The worker
subprocesses run fake trials in-process (``--inline``), so they do not import torch.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import studies.engine._runner
import studies.cli
from studies import StorageError, StudySpec, expand_cells, open_storage, run_study, run_worker

pytestmark = pytest.mark.postgres

FAKE = "studies._testing:fake_trial"
COUNTING = "studies._testing:counting_trial"
ADMIN_URL = os.environ.get("ORCA_ABLATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials()


def _exactly_once(url: str, spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    trials = _trials(url, spec.name)
    complete = sorted((t.user_attrs["cell"], t.user_attrs["slot"]) for t in trials if t.state == TrialState.COMPLETE)
    assert complete == sorted(c.ident for c in expand_cells(spec))
    return trials


def _worker(url: str, name: str, env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "studies.cli", "worker", "--storage", url, "--study-name", name,
                             "--inline", "--no-progress", "--trial-fn", COUNTING, *extra],
                            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def _states(url: str, name: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in _trials(url, name):
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


@pytest.mark.slow  # 4 subprocesses
def test_three_workers_share_one_study(pg_url: str, tmp_path: Path, cli_env: dict[str, str], fake_env: Path,
                                       write_spec: Callable[..., Path], small: dict[str, Any]) -> None:
    spec = StudySpec.from_dict(small)  # 16 cells
    prepared = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(write_spec(small)), "--storage", pg_url,
                               "--workers", "0", "--artifact-dir", str(tmp_path / "artifacts")],
                              env=cli_env, cwd=tmp_path, text=True, capture_output=True, timeout=120)
    assert prepared.returncode == 0, prepared.stderr
    assert "0/16 cells complete, 16 to run; no trials were run (--workers 0)" in prepared.stdout
    assert f"orca-ablate worker --storage {pg_url} --study-name small" in prepared.stdout
    assert _trials(pg_url, "small") == []
    study = optuna.load_study(study_name="small", storage=open_storage(pg_url))
    assert study.user_attrs["artifact_dir"] == str(tmp_path / "artifacts")

    env = dict(cli_env, ORCA_ABLATE_FAKE_SECONDS="0.4")
    workers = [_worker(pg_url, "small", env, tmp_path) for _ in range(3)]
    outputs = [w.communicate(timeout=180) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
        assert "16/16 cells complete; this worker:" in out
    trials = _exactly_once(pg_url, spec)
    assert len(trials) == 16  # no attempt withdrawn or duplicated: the claim is atomic
    assert len(list(fake_env.glob("call-*"))) == 16  # nothing ran twice
    assert {t.user_attrs["owner_pid"] for t in trials} == {w.pid for w in workers}  # all three took cells
    assert all(t.user_attrs["worker_pid"] == t.user_attrs["owner_pid"] for t in trials)  # --inline


@pytest.mark.slow  # 2 subprocesses
def test_killed_worker_cell_is_rerun_by_another(pg_url: str, tmp_path: Path, cli_env: dict[str, str],
                                                fake_env: Path, small: dict[str, Any]) -> None:
    small.update(tasks=["digits"], seeds=[0], factors={"embedder.epochs": [0, 2, 4], "finetune.freeze": ["none", "body"]})
    spec = StudySpec.from_dict(small)  # 6 cells
    run_study(spec, storage=pg_url, workers=0, progress=False)
    env = dict(cli_env, ORCA_ABLATE_FAKE_SECONDS="1.0")
    victim = _worker(pg_url, spec.name, env, tmp_path)
    survivor = _worker(pg_url, spec.name, env, tmp_path)

    def both_running() -> bool:
        owners = {t.user_attrs.get("owner_pid") for t in _trials(pg_url, spec.name) if t.state == TrialState.RUNNING}
        return {victim.pid, survivor.pid} <= owners

    try:
        _wait_for(both_running, timeout=60)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    trials = _exactly_once(pg_url, spec)
    stale = [t for t in trials if t.state == TrialState.FAIL]
    assert len(stale) == 1 and stale[0].user_attrs["owner_pid"] == victim.pid
    assert stale[0].user_attrs["stale"] is True
    assert stale[0].user_attrs["error"] == f"stale: owner pid {victim.pid} on {socket.gethostname()} is gone"
    redone = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs["cell"] == stale[0].user_attrs["cell"]]
    assert redone[0].user_attrs["owner_pid"] == survivor.pid
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 6  # nothing doubled
    assert "re-ran 1 stale attempts of killed runs" in out


def _terminate_backends(database: str) -> int:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return len(rows)


def test_dropped_connections_are_survived(pg_url: str, fake_env: Path, small: dict[str, Any],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCA_ABLATE_FAKE_SECONDS", "0.05")
    small.update(tasks=["digits"])
    spec = StudySpec.from_dict(small)  # 8 cells
    database = pg_url.rsplit("/", 1)[1]
    stop = threading.Event()
    killed: list[int] = []

    def kill_connections() -> None:  # every session of the test database, every 0.4 s, 8 times
        while len(killed) < 8 and not stop.wait(0.4):
            killed.append(_terminate_backends(database))

    killer = threading.Thread(target=kill_connections)
    killer.start()
    try:
        report = run_study(spec, storage=pg_url, inline=True, trial_fn=COUNTING, progress=False)
    finally:
        stop.set()
        killer.join()
    assert sum(killed) > 0, "no connection was terminated: the test did not test anything"
    assert report.exit_code == 0
    trials = _exactly_once(pg_url, spec)
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 8


def _server_restart_possible() -> str | None:
    """Return why this test cannot restart the server here, or None."""
    if os.environ.get("CI", "").lower() != "true" and not os.environ.get("ORCA_ABLATE_TEST_PG_RESTART"):
        return ("restarts the shared PostgreSQL server: runs in CI (CI=true) or with "
                "ORCA_ABLATE_TEST_PG_RESTART=1")
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "restarting the PostgreSQL server needs root"
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return "no Debian PostgreSQL cluster (pg_ctlcluster) on this machine"
    return None


def _pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    mode = ["--mode", "fast"] if action == "restart" else []  # fast: end every session, do not wait for them
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *mode, version, "main", action],
                   check=True, timeout=120, capture_output=True)


def _server_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], timeout=30).returncode == 0


@pytest.mark.slow  # 2 subprocesses and a server restart
def test_study_completes_across_a_server_restart(pg_url: str, tmp_path: Path, cli_env: dict[str, str],
                                                 fake_env: Path, small: dict[str, Any]) -> None:
    reason = _server_restart_possible()
    if reason:
        pytest.skip(reason)
    small.update(tasks=["digits"], seeds=[0, 1, 2])
    spec = StudySpec.from_dict(small)  # 12 cells
    run_study(spec, storage=pg_url, workers=0, progress=False)
    env = dict(cli_env, ORCA_ABLATE_FAKE_SECONDS="0.5")
    workers = [_worker(pg_url, spec.name, env, tmp_path) for _ in range(2)]
    try:
        _wait_for(lambda: _states(pg_url, spec.name).get("COMPLETE", 0) >= 2, timeout=60)
        started = time.monotonic()
        _pg_ctl("restart")  # fast shutdown: every session ends, in-flight transactions roll back
        outage = time.monotonic() - started
        outputs = [w.communicate(timeout=240) for w in workers]
    finally:
        if not _server_up():
            _pg_ctl("start")
        _wait_for(_server_up, timeout=60)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err
    trials = _exactly_once(pg_url, spec)
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 12
    assert outage < 60
    assert any("retrying for up to" in err for _, err in outputs), [err for _, err in outputs]  # it did retry


def test_worker_stops_after_max_trials_then_another_finishes(pg_url: str, fake_env: Path,
                                                              small: dict[str, Any]) -> None:
    small.update(tasks=["digits"], seeds=[0])
    spec = StudySpec.from_dict(small)  # 4 cells
    run_study(spec, storage=pg_url, workers=0, progress=False)
    first = run_worker(pg_url, spec.name, max_trials=2, inline=True, trial_fn=FAKE, progress=False)
    assert first.exit_code == 0 and first.ran == 2 and first.complete == 2 and first.mode == "worker"
    assert "study small in postgresql+psycopg://" in first.summary() and "2/4 cells complete; this worker" in \
        first.summary()
    second = run_worker(pg_url, None, inline=True, trial_fn=FAKE, progress=False)  # the only study: name optional
    assert second.exit_code == 0 and second.ran == 2 and second.complete == 4
    _exactly_once(pg_url, spec)


def test_failures_count_against_retries_across_workers(pg_url: str, fake_env: Path, small: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(studies.engine._runner, "POLL_INTERVAL_S", 0.2)  # a worker waiting for the other's cell
    small.update(tasks=["digits"], seeds=[0, 1], factors={"embedder.epochs": [0, 2]})
    spec = StudySpec.from_dict(small)  # 4 cells; the 2 of seed 1 always fail
    run_study(spec, storage=pg_url, workers=0, progress=False)
    reports: list[studies.StudyReport] = []

    def work() -> None:
        reports.append(run_worker(pg_url, spec.name, inline=True, max_retries=1, progress=False,
                                  trial_fn="studies._testing:always_failing_trial"))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.exit_code for r in reports) == [1, 1]  # both report the failed cells
    failed = [t for t in _trials(pg_url, spec.name) if t.state == TrialState.FAIL]
    assert len(failed) == 2 * 2  # 2 attempts per failing cell in all, not 2 per worker
    assert {t.user_attrs["error"] for t in failed} == {"ValueError: seed 1 always fails"}


def test_worker_needs_an_existing_study_and_a_shared_storage(pg_url: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(StorageError, match="a worker joins an existing study: create it first with orca-ablate "
                                           "run SPEC --storage postgresql"):
        run_worker(pg_url, "nope", inline=True)
    code = studies.cli.main(["worker", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--study", "x"])
    err = capsys.readouterr().err
    assert code == 2
    assert "workers need a storage that many processes write safely: PostgreSQL" in err
    assert "orca-ablate run SPEC --workers K" in err
    assert studies.cli.main(["worker", "--study", "x"]) == 2
    assert "--storage is required" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "message"), [
    (lambda url: url.rsplit("/", 1)[0] + "/orca_no_such_db", "database 'orca_no_such_db' does not exist on "
                                                             "127.0.0.1:5432; create it first"),
    (lambda url: url.replace("//postgres@", "//nobody_here:s3cr3t@"), "the server at 127.0.0.1:5432 refused user "
                                                                     "'nobody_here'"),
])
def test_server_errors_are_clear_and_masked(pg_url: str, change: Callable[[str], str], message: str) -> None:
    with pytest.raises(StorageError) as info:
        open_storage(change(pg_url))
    assert message in str(info.value) and "s3cr3t" not in str(info.value)


def test_status_command_masks_the_password(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = pg_url.replace("//postgres@", "//nobody_here:s3cr3t@")
    assert studies.cli.main(["status", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orca-ablate status: error: --storage postgresql+psycopg://nobody_here:***@127.0.0.1")
    assert "s3cr3t" not in err and len(err.strip().splitlines()) == 1
