"""``orca-ablate run`` / ``status`` as subprocesses: exit codes, SIGKILL and resume, Optuna's CLI reads the study.

Each subprocess imports harness (and with it torch), so these tests are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from studies import StudySpec, expand_cells, open_storage, run_study

FAKE: list[str] = []
"""The fake trial function comes from $ORCA_ABLATE_TRIAL_FN (the cli_env fixture below): the testing hook
keeps a harness spec's names checked, where ``run --trial-fn`` would make them free."""


@pytest.fixture
def cli_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {**cli_env, "ORCA_ABLATE_TRIAL_FN": "studies._testing:fake_trial"}
OPTUNA_CLI = "import sys; from optuna.cli import main; sys.argv[0] = 'optuna'; sys.exit(main())"
"""Optuna's own ``optuna`` console script, run with this interpreter."""


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "studies.cli", *args], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def _urls(kind: str, directory: Path) -> tuple[str, str]:
    """Return (orca-ablate URL, the same storage as Optuna's CLI takes it)."""
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'study.db'}"
        return url, url
    return f"journal:///{directory / 'study.log'}", str(directory / "study.log")


def _complete_once(url: str, spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    trials = optuna.load_study(study_name=spec.name, storage=open_storage(url)).get_trials()
    complete = sorted((t.user_attrs["cell"], t.user_attrs["slot"]) for t in trials if t.state == TrialState.COMPLETE)
    assert complete == sorted(c.ident for c in expand_cells(spec))
    return trials


@pytest.mark.slow
def test_run_status_and_optuna_cli(storage_kind: str, tmp_path: Path, cli_env: dict[str, str],
                                   write_spec: Callable[..., Path], small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"])
    path = write_spec(small)
    url, optuna_url = _urls(storage_kind, tmp_path)
    done = _cli(["run", str(path), "--storage", url, "--study", "cli", "--inline", *FAKE], cli_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "study cli in" in done.stdout and "4/4 cells complete" in done.stdout
    assert "cell" in done.stderr  # the progress bar
    status = _cli(["status", "--storage", url, "--study-name", "cli"], cli_env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert "study cli: 4/4 cells complete, 0 running, 0 failed, 0 waiting" in status.stdout
    assert "embedder.epochs  2" in status.stdout
    listing = subprocess.run([sys.executable, "-c", OPTUNA_CLI, "trials", "--storage", optuna_url,
                              "--study-name", "cli", "-f", "json"], env=cli_env, cwd=tmp_path, text=True,
                             capture_output=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert len(rows) == 4 and {r["state"] for r in rows} == {"COMPLETE"}
    assert set(rows[0]["params"]) == {"task", "embedder.epochs", "finetune.freeze", "seed"}


@pytest.mark.slow
def test_default_storage_is_sqlite_in_the_working_directory(tmp_path: Path, cli_env: dict[str, str],
                                                            write_spec: Callable[..., Path],
                                                            small: dict[str, Any]) -> None:
    small.update(seeds=[0], tasks=["digits"], factors={})
    done = _cli(["run", str(write_spec(small)), "--no-progress", "--inline", *FAKE], cli_env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "orca-ablate.db").exists()
    assert _cli(["status"], cli_env, tmp_path).returncode == 0  # the only study in the storage


@pytest.mark.slow
def test_user_errors_exit_2_with_one_line(tmp_path: Path, cli_env: dict[str, str], write_spec: Callable[..., Path],
                                          small: dict[str, Any]) -> None:
    missing = _cli(["run", "quickstat"], cli_env, tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "orca-ablate run: error: spec 'quickstat': no such file, and no shipped spec of that name; did you mean "
        "quickstart? (shipped: embedder-epochs, freezing, objective, pretraining, proxy, quickstart)"]
    small.update(seeds=[0], tasks=["digits"], factors={})
    path = str(write_spec(small))
    run_study(StudySpec.from_dict(small), storage=f"sqlite:///{tmp_path / 'orca-ablate.db'}", inline=True,
              trial_fn="studies._testing:fake_trial", progress=False)
    changed = _cli(["run", path, "--no-progress", "--set", "finetune.epochs=1", *FAKE], cli_env, tmp_path)
    assert changed.returncode == 2
    assert "base: differs from study 'small' at finetune.epochs (study: 3, this spec: 1)" in changed.stderr
    other = _cli(["status", "--study", "smal"], cli_env, tmp_path)
    assert other.returncode == 2 and "no study named 'smal' in this storage; did you mean small?" in other.stderr


def _wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def _states(url: str, name: str) -> dict[str, int]:
    try:
        trials = optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - the run is still creating the storage or the study
        return {}
    out: dict[str, int] = {}
    for trial in trials:
        out[trial.state.name] = out.get(trial.state.name, 0) + 1
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("victim", "storage_kind"), [("group", "sqlite"), ("parent", "journal")])
def test_sigkill_mid_study_then_resume(victim: str, storage_kind: str, tmp_path: Path, cli_env: dict[str, str],
                                       write_spec: Callable[..., Path], small: dict[str, Any]) -> None:
    small.update(seeds=[0, 1], tasks=["digits"])
    spec = StudySpec.from_dict(small)
    path = write_spec(small)
    url, _ = _urls(storage_kind, tmp_path)
    slow = dict(cli_env, ORCA_ABLATE_FAKE_SECONDS="0.6", ORCA_ABLATE_TRIAL_FN="studies._testing:counting_trial")
    process = subprocess.Popen([sys.executable, "-m", "studies.cli", "run", str(path), "--storage", url,
                                "--workers", "2", "--no-progress"],
                               env=slow, cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _states(url, spec.name).get("COMPLETE", 0) >= 2
                  and _states(url, spec.name).get("RUNNING", 0) >= 1, timeout=60)
    finally:
        if victim == "group":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
    before = optuna.load_study(study_name=spec.name, storage=open_storage(url)).get_trials()
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert running, "the kill should leave attempts RUNNING"
    if victim == "parent":  # orphaned workers notice and exit, so they do not run on unobserved
        workers = {t.user_attrs["worker_pid"] for t in running}
        _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)
    resumed = _cli(["run", str(path), "--storage", url, "--inline", "--max-retries", "0", "--no-progress",
                    *FAKE], cli_env, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"re-ran {len(running)} stale attempts" in resumed.stdout
    trials = _complete_once(url, spec)
    stale = [t for t in trials if t.user_attrs.get("stale")]
    assert {t.number for t in stale} == {t.number for t in running}
    assert all(t.state == TrialState.FAIL and "is gone" in t.user_attrs["error"] for t in stale)
    kept = {t.number: t.value for t in before if t.state == TrialState.COMPLETE}
    assert {t.number: t.value for t in trials if t.number in kept} == kept  # nothing lost


def _alive(pid: int) -> bool:
    from studies.engine._attempts import pid_alive

    return pid_alive(pid)


def test_help_does_not_import_optuna(cli_env: dict[str, str], tmp_path: Path) -> None:
    code = "import sys, studies.cli; studies.cli.build_parser(); print('optuna' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=cli_env, cwd=tmp_path, text=True, capture_output=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.slow
def test_tasks_and_seeds_replace_the_specs_lists(tmp_path: Path, cli_env: dict[str, str],
                                                 write_spec: Callable[..., Path], small: dict[str, Any]) -> None:
    small.update(factors={})
    path = str(write_spec(small))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = _cli(["run", path, "--storage", url, "--no-progress", "--inline", "--tasks", "digits",
                  "--seeds", "7", *FAKE], cli_env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1/1 cells complete" in first.stdout
    cells = {t.user_attrs["cell"] for t in optuna.load_study(study_name="small", storage=url).get_trials()}
    assert cells == {'{"seed":7,"task":"digits"}'}
    more = _cli(["run", path, "--storage", url, "--no-progress", "--inline", "--tasks", "digits",
                 "--seeds", "7", "8", *FAKE], cli_env, tmp_path)  # more seeds extend the study
    assert more.returncode == 0, more.stderr
    assert "2/2 cells complete" in more.stdout
    bad = _cli(["run", path, "--storage", url, "--no-progress", "--seeds", "7", "-1", *FAKE], cli_env, tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"orca-ablate run: error: {path} with --seeds: seeds[1]: expected an integer from 0 to 4294967295, got -1"]
    unknown = _cli(["run", path, "--storage", url, "--no-progress", "--tasks", "digits", "digts", *FAKE],
                   cli_env, tmp_path)
    assert unknown.returncode == 2 and "digts" in unknown.stderr and "Traceback" not in unknown.stderr
    dropped = _cli(["run", path, "--storage", url, "--no-progress", "--tasks", "synthetic-1d", "--seeds", "7",
                    *FAKE], cli_env, tmp_path)
    assert dropped.returncode == 2 and "a spec may add values but not drop ['digits']" in dropped.stderr
    assert len(optuna.load_study(study_name="small", storage=url).get_trials()) == 2  # nothing written
