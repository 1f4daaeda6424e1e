"""Nothing lost, nothing doubled: torn journal records, a full disk, and resuming after them."""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import studies.storage.backends.journal as journal
from harness.contract import CELL
from studies import StorageError, StudySpec, expand_cells, open_storage, run_study

FAKE = "studies._testing:fake_trial"
SPEC = {"name": "rel", "tasks": ["digits", "synthetic-1d"], "seeds": [0, 1], "factors": {"embedder.epochs": [0, 2]}}


def _exactly_once(storage: str) -> None:
    trials = optuna.load_study(study_name="rel", storage=open_storage(storage)).get_trials()
    complete = sorted(t.user_attrs[CELL] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == sorted(c.key for c in expand_cells(StudySpec.from_dict(SPEC)))


def test_a_torn_last_record_is_moved_aside_before_the_next_write(tmp_path: Path, fake_env: Path) -> None:
    url = str(tmp_path / "s.log")
    spec = StudySpec.from_dict(SPEC)
    run_study(spec, storage=url, workers=0, progress=False)
    with open(url, "ab") as handle:
        handle.write(b'{"op_code":5,"worker_id":"torn-by-a-crash')  # a writer died mid-record
    report = run_study(spec, storage=url, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO())
    assert report.exit_code == 0
    _exactly_once(url)
    torn = list(tmp_path.glob("s.log.torn-*"))
    assert len(torn) == 1 and torn[0].read_bytes() == b'{"op_code":5,"worker_id":"torn-by-a-crash'
    assert all(line.endswith(b"}") for line in Path(url).read_bytes().splitlines())


def test_a_bad_record_followed_by_others_is_refused_and_left_alone(tmp_path: Path) -> None:
    url = str(tmp_path / "s.log")
    run_study(StudySpec.from_dict(SPEC), storage=url, workers=0, progress=False)
    with open(url, "ab") as handle:
        handle.write(b'garbage\n{"op_code": 1}\n')
    before = Path(url).read_bytes()
    lines = before.count(b"\n")
    with pytest.raises(StorageError, match=rf"line {lines - 1} of the journal file is not an Optuna record.*"
                                           rf"head -n {lines - 2}"):
        open_storage(url)
    assert Path(url).read_bytes() == before


def test_a_full_disk_mid_write_is_undone_and_the_study_resumes(tmp_path: Path, fake_env: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "s.log")
    spec = StudySpec.from_dict(SPEC)
    run_study(spec, storage=url, workers=0, progress=False)
    real = journal._write_all
    calls = {"n": 0}

    def half_then_full(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 12:  # mid-run: half a record reaches the disk, then ENOSPC
            os.write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(journal, "_write_all", half_then_full)
    with pytest.raises(StorageError, match="the disk is full; the write was undone and the journal is intact"):
        run_study(spec, storage=url, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO())
    assert Path(url).read_bytes().endswith(b"}\n")  # no half record left
    monkeypatch.setattr(journal, "_write_all", real)
    report = run_study(spec, storage=url, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO(),
                       grace_period=0.5)  # the interrupted attempt's owner is this (live) process
    assert report.exit_code == 0
    _exactly_once(url)


@pytest.fixture
def small_disk(tmp_path: Path, require: Any) -> Path:
    """A 3 MB tmpfs (root only); unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    ok = os.geteuid() == 0 and shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True).returncode == 0
    require(ok, "needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_full_tmpfs_mid_run_then_resume_ends_exactly_once(small_disk: Path, tmp_path: Path,
                                                         cli_env: dict[str, str], write_spec: Any) -> None:
    url = str(small_disk / "study.log")
    spec = write_spec(SPEC)
    env = {**cli_env, "ORCA_ABLATE_FAKE_SECONDS": "2"}
    command = [sys.executable, "-m", "studies.cli", "run", str(spec), "--storage", url, "--workers", "2",
               "--trial-fn", FAKE, "--no-progress", "--grace-period", "2"]
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    filler = small_disk / "filler"
    try:
        with open(filler, "wb") as handle:  # fill the disk to the last byte
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    print({p.name: p.stat().st_size for p in small_disk.iterdir()})
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2 and "the disk is full; the write was undone" in err, err
    assert "Traceback" not in err and err.count("\n") <= 3, err  # one clear line (and the progress notes)
    filler.unlink()
    time.sleep(2.5)  # the killed run's attempts go stale (grace period 2 s; their processes are gone anyway)
    again = subprocess.run(command, env={**env, "ORCA_ABLATE_FAKE_SECONDS": "0"}, capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr
    _exactly_once(url)


def test_extension_keeps_artifacts_notes_and_the_artifact_dir(tmp_path: Path, fake_env: Path) -> None:
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = StudySpec.from_dict(SPEC)
    run_study(spec, storage=url, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO(),
              artifact_dir=str(tmp_path / "shared-artifacts"))
    study = optuna.load_study(study_name="rel", storage=open_storage(url))
    (tmp_path / "report.md").write_text("# report\n")
    (tmp_path / "shared-artifacts").mkdir(exist_ok=True)
    store = FileSystemArtifactStore(str(tmp_path / "shared-artifacts"))
    artifact = upload_artifact(artifact_store=store, file_path=str(tmp_path / "report.md"), study_or_trial=study)
    study.set_user_attr("slurm_submissions", [{"job_id": "7", "array": 2, "script": "x", "submitted": "t"}])
    storage = open_storage(url)
    system_before = storage.get_study_system_attrs(study._study_id)
    assert any(artifact in str(v) for v in system_before.values())
    wider = StudySpec.from_dict({**SPEC, "seeds": [0, 1, 2]})
    report = run_study(wider, storage=url, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO())
    assert report.complete == report.total == 12
    after = optuna.load_study(study_name="rel", storage=open_storage(url))
    assert open_storage(url).get_study_system_attrs(after._study_id) == system_before
    assert after.user_attrs["artifact_dir"] == str(tmp_path / "shared-artifacts")
    assert after.user_attrs["slurm_submissions"][0]["job_id"] == "7"


def test_reordered_levels_are_no_change(tmp_path: Path, fake_env: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_study(StudySpec.from_dict(SPEC), storage=url, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO())
    study = optuna.load_study(study_name="rel", storage=open_storage(url))
    first_id = study._study_id
    shuffled = {**SPEC, "tasks": ["synthetic-1d", "digits"], "seeds": [1, 0], "factors": {"embedder.epochs": [2, 0]}}
    report = run_study(StudySpec.from_dict(shuffled), storage=url, inline=True, trial_fn=FAKE, progress=False,
                       log=io.StringIO())
    assert report.completed_now == 0 and report.complete == 8
    again = optuna.load_study(study_name="rel", storage=open_storage(url))
    assert again._study_id == first_id  # not rewritten
    assert again.user_attrs["spec"]["factors"] == {"embedder.epochs": [0, 2]}


def test_read_only_storage_is_refused_and_left_alone(small_disk: Path, tmp_path: Path, fake_env: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from studies.cli import main

    old = Path(__file__).resolve().parents[1] / "data" / "studies-v0"
    for name in ("study.db", "study.log"):  # copies: no handle of this process stays open on the disk
        shutil.copy(old / name, small_disk / name)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)  # EROFS: read-only even for root
    before = {p.name: p.read_bytes() for p in small_disk.iterdir()}
    (tmp_path / "old.yaml").write_text((old / "spec.yaml").read_text())
    for url in (f"sqlite:///{small_disk / 'study.db'}", str(small_disk / "study.log")):
        assert main(["run", str(tmp_path / "old.yaml"), "--storage", url, "--workers", "0"]) == 2
        err = capsys.readouterr().err.strip()
        assert "is read-only" in err and len(err.splitlines()) == 1, err
        code = main(["status", "--storage", url])  # a journal reads; WAL-mode SQLite needs a writable directory
        err = capsys.readouterr().err.strip()
        assert code == 0 if url.endswith(".log") else (code == 2 and "copy the file somewhere writable" in err), err
    assert {p.name: p.read_bytes() for p in small_disk.iterdir()} == before


@pytest.mark.slow  # worker processes
def test_a_killed_cell_is_rerun_with_its_checkpoint_folder(tmp_path: Path, fake_env: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCA_ABLATE_CACHE", str(tmp_path / "cache"))
    spec = StudySpec.from_dict({**SPEC, "tasks": ["digits"], "seeds": [0]})
    url = str(tmp_path / "s.log")
    report = run_study(spec, storage=url, workers=1, trial_fn="studies._testing:checkpoint_trial", progress=False,
                       log=io.StringIO())
    assert report.exit_code == 0 and report.complete == 2
    trials = optuna.load_study(study_name="rel", storage=open_storage(url)).get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    died = [t for t in trials if t.user_attrs.get("stale")]
    assert len(done) == 2 and len(died) == 2  # each cell: one attempt killed, one resumed
    for trial in done:
        folder = trial.user_attrs["details"]["checkpoint_dir"]
        assert trial.user_attrs["details"]["resumed"] is True
        assert folder.startswith(str(tmp_path / "cache" / "checkpoints"))
    assert len({t.user_attrs["details"]["checkpoint_dir"] for t in done}) == 2  # one folder per cell


@pytest.mark.slow
def test_sqlite_on_a_full_disk_is_one_clear_line_then_resumes(small_disk: Path, cli_env: dict[str, str],
                                                               write_spec: Any) -> None:
    url = f"sqlite:///{small_disk / 'study.db'}"
    spec = write_spec(SPEC)
    command = [sys.executable, "-m", "studies.cli", "run", str(spec), "--storage", url, "--workers", "1",
               "--trial-fn", FAKE, "--no-progress", "--grace-period", "2"]
    run = subprocess.Popen(command, env={**cli_env, "ORCA_ABLATE_FAKE_SECONDS": "2"}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while time.monotonic() < end and not (small_disk / "study.db").exists():
        time.sleep(0.2)
    time.sleep(5)
    filler = small_disk / "filler"
    try:
        with open(filler, "wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    _, err = run.communicate(timeout=120)
    assert run.returncode == 2 and "the disk is full" in err and "Traceback" not in err, err
    filler.unlink()
    time.sleep(2.5)
    again = subprocess.run(command, env={**cli_env, "ORCA_ABLATE_FAKE_SECONDS": "0"}, capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr
    _exactly_once(url)
