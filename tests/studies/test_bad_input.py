"""Every bad input is refused up front: one line, exit 2, no traceback, storage unchanged (and a fuzz test of it)."""

from __future__ import annotations

import contextlib
import hashlib
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from studies.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "studies-v0"
VALID = {"name": "fuzz", "tasks": ["digits"], "seeds": [0, 1], "factors": {"embedder.epochs": [0, 2]},
         "base": {"finetune.epochs": 1}}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the old-format SQLite study (study ``old``)."""
    shutil.copy(DATA / "study.db", tmp_path / "study.db")
    return tmp_path / "study.db"


def _digest(path: Path) -> str:
    """Return a digest of a file's content; for a SQLite file, of its logical content (WAL included).

    A SQLite file's bytes change when a connection of an earlier, accepted case checkpoints its
    write-ahead log; what must not change is what the database holds.
    """
    if not path.exists():
        return "absent"
    if path.suffix == ".db" and path.read_bytes()[:16] == b"SQLite format 3\x00":
        import sqlite3

        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                return hashlib.sha256("\n".join(db.iterdump()).encode()).hexdigest()
        except sqlite3.DatabaseError:  # corrupt or foreign on purpose: its bytes must stay the same
            pass
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *watched: Path) -> str:
    """Run the CLI in-process; assert exit 2, one line on stderr, files unchanged; return that line."""
    before = [_digest(p) for p in watched]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert [_digest(p) for p in watched] == before, argv
    return err


def _npz(path: Path, **overrides: Any) -> str:
    arrays = {"x_train": np.zeros((6, 1, 8)), "y_train": np.arange(6) % 2, "x_test": np.zeros((4, 1, 8)),
              "y_test": np.arange(4) % 2, **overrides}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return f"npz:{path}"


def test_bad_names_tasks_seeds_and_numbers_are_refused_before_the_study_changes(
        store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(VALID))
    url = f"sqlite:///{store}"
    base = ["run", str(spec), "--storage", url, "--workers", "0"]
    cases = {
        "escaping study name": (base + ["--study-name", "../../../escaped"], "a study name is letters"),
        "absolute study name": (base + ["--study-name", "/etc/x"], "a study name is letters"),
        "newline in study name": (base + ["--study-name", "a\nb"], "a study name is letters"),
        "missing npz": (base + ["--tasks", "npz:/does/not/exist.npz"], "not found"),
        "string labels": (base + ["--tasks", _npz(tmp_path / "s.npz", y_train=np.array(list("ababab")))],
                          "labels integers"),
        "channel mismatch": (base + ["--tasks", _npz(tmp_path / "c.npz", x_test=np.zeros((4, 2, 8)))],
                             "same channels and length"),
        "complex inputs": (base + ["--tasks", _npz(tmp_path / "z.npz", x_train=np.zeros((6, 1, 8), complex))],
                           "real numbers"),
        "unknown ucr set": (base + ["--tasks", "ucr:NoSuchSet"], "--allow-missing-data"),
        "huge seed": (base + ["--seeds", str(10**23)], "from 0 to 4294967295"),
        "negative seed": (base + ["--seeds", "-1"], "from 0 to 4294967295"),
        "nan lr": (base + ["--set", "finetune.lr=nan"], "give a finite number"),
        "zero tokens": (base + ["--set", "embedder.tokens=0"], "give a positive number"),
        "missing body": (base + ["--set", "body.path=/no/such/model"], "no such folder"),
        "negative grace": (base + ["--grace-period", "-5"], "positive number of seconds"),
        "empty storage": (["run", str(spec), "--storage", "", "--workers", "0"], "empty"),
        "in-memory storage": (["run", str(spec), "--storage", "sqlite:///:memory:", "--workers", "0"],
                              "in-memory database vanishes"),
    }
    for label, (argv, expected) in cases.items():
        assert expected in _refused(argv, capsys, store), label
    # --allow-missing-data lets a host without the data create the study (its workers have it).
    assert main(base + ["--tasks", "ucr:NoSuchSet", "--allow-missing-data", "--study-name", "remote"]) == 0
    capsys.readouterr()


def test_bad_storage_files_are_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(VALID))
    (tmp_path / "text.db").write_text("hello\n")
    (tmp_path / "random.db").write_bytes(random.Random(0).randbytes(5000))
    shutil.copy(DATA / "study.db", tmp_path / "whole.db")
    (tmp_path / "truncated.db").write_bytes((tmp_path / "whole.db").read_bytes()[:20000])
    import sqlite3

    with sqlite3.connect(tmp_path / "foreign.db") as db:
        db.execute("CREATE TABLE people (name TEXT)")
    (tmp_path / "torn.log").write_bytes(b'{"op_code": 0}\ngarbage\n{"op_code": 1}\n')
    for name, expected in (("text.db", "not a SQLite database"), ("random.db", "not a SQLite database"),
                           ("truncated.db", "cannot be read as a SQLite database"),
                           ("foreign.db", "a SQLite database of something else"),
                           ("torn.log", "line 2 of the journal file is not an Optuna record")):
        url = f"sqlite:///{tmp_path / name}" if name.endswith(".db") else str(tmp_path / name)
        for argv in (["run", str(spec), "--storage", url, "--workers", "0"], ["status", "--storage", url]):
            assert expected in _refused(argv, capsys, tmp_path / name), (name, argv[0])


def test_report_out_must_be_a_writable_directory(store: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x")
    url = f"sqlite:///{store}"
    assert "is a file, not a directory" in _refused(
        ["report", "--storage", url, "--study", "old", "--out", str(tmp_path / "a-file")], capsys, store)
    assert "--random-state must be 0 or more" in _refused(
        ["report", "--storage", url, "--study", "old", "--random-state", "-5"], capsys, store)


@pytest.mark.slow
def test_sigterm_stops_a_run_cleanly_and_says_how_to_resume(tmp_path: Path, cli_env: dict[str, str],
                                                           write_spec: Any) -> None:
    spec = write_spec(VALID)
    command = [sys.executable, "-m", "studies.cli", "run", str(spec), "--storage", f"sqlite:///{tmp_path / 's.db'}",
               "--trial-fn", "studies._testing:fake_trial", "--no-progress"]
    run = subprocess.Popen(command, env={**cli_env, "ORCA_ABLATE_FAKE_SECONDS": "5"}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    _wait_for_a_running_attempt(f"sqlite:///{tmp_path / 's.db'}", run)  # the handler is installed by then
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 143, err
    assert "stopped by SIGTERM; running attempts were marked stale" in err
    assert "resume with: orca-ablate run" in err and "Traceback" not in err


def _wait_for_a_running_attempt(url: str, run: subprocess.Popen[str], timeout: float = 120) -> None:
    import optuna
    from optuna.trial import TrialState

    from studies import open_storage

    end = time.monotonic() + timeout
    while time.monotonic() < end and run.poll() is None:
        try:
            trials = optuna.load_study(study_name="fuzz", storage=open_storage(url)).get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - the study or its file does not exist yet
            trials = []
        if any(t.state == TrialState.RUNNING for t in trials):
            return
        time.sleep(0.3)
    pytest.fail("the run never started a trial")


def _mutations(rng: random.Random) -> Any:
    """Return a malformed spec (a mapping, usually) made by breaking VALID at random."""
    junk = [None, "", "  ", -1, 10**30, 1.5, float("inf"), True, [], {}, [[1]], {"a": {"b": 1}}, "x" * 300,
            "../x", "name with space", "ucr:", "npz:", "fake:thing", ["digits", "digits"], [0, 0], "\x00"]
    spec: Any = yaml.safe_load(yaml.safe_dump(VALID))
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(["name", "tasks", "seeds", "factors", "base", "metric", "direction", "search",
                          "trials_per_cell", "sampler", "extra_key", "factors.embedder.epochs", "base.finetune.epochs",
                          "factors.embeder.epochs", "base.finetune.lrr"])
        value = rng.choice(junk)
        if rng.random() < 0.15:
            spec.pop(key, None)
        elif key.startswith(("factors.", "base.")):
            section, path = key.split(".", 1)
            spec.setdefault(section, {}) if isinstance(spec.get(section), dict) else spec.__setitem__(section, {})
            spec[section][path] = value
        else:
            spec[key] = value
    return spec if rng.random() > 0.05 else rng.choice(junk)


def test_fuzz_malformed_specs_and_settings(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Hundreds of malformed specs, --set values and npz files: never a traceback, refusals leave storage alone."""
    rng = random.Random(20261201)
    url = f"sqlite:///{store}"
    tally = {"cases": 0, "refused": 0, "accepted": 0}
    deadline = time.monotonic() + 45
    settings = ["finetune.lr=abc", "finetune.lr=-inf", "embedder.epochs=-3", "embedder.epochs=1.5",
                "finetune.freeze=nonsense", "embedder.proxy=nope", "nosuch.key=1", "finetune=3", "seed=3",
                "task=digits", "=1", "finetune.epochs", "embedder.tokens=-2", "data.val_fraction=2",
                "body.layers=0", "embedder.objective=otdd-wrong"]
    for i in range(400):
        if time.monotonic() > deadline:
            break
        spec = tmp_path / f"fuzz{i}.yaml"
        kind = rng.random()
        argv = ["run", str(spec), "--storage", url, "--workers", "0", "--study-name", f"fuzz{i}"]
        if kind < 0.6:
            spec.write_text(yaml.safe_dump(_mutations(rng)))
        elif kind < 0.8:
            spec.write_text(yaml.safe_dump(VALID))
            argv += ["--set", *rng.sample(settings, rng.randint(1, 2))]
        elif kind < 0.9:
            spec.write_bytes(rng.randbytes(rng.randint(0, 200)))
        else:
            spec.write_text(yaml.safe_dump(VALID))
            bad = rng.choice([{"y_train": np.array(list("abcdef"))}, {"x_test": np.zeros((4, 3, 8))},
                              {"y_test": None}, {"x_train": np.zeros((6, 8))}, {"y_train": np.zeros(5, int)}])
            argv += ["--tasks", _npz(tmp_path / f"fuzz{i}.npz", **bad)]
        before = _digest(store)
        code = main(argv)  # a traceback would fail the test right here
        err = capsys.readouterr().err.strip()
        tally["cases"] += 1
        if code == 2:
            tally["refused"] += 1
            assert len(err.splitlines()) == 1 and "Traceback" not in err, (argv, err)
            assert _digest(store) == before, argv
        else:
            assert code == 0, (argv, err)
            tally["accepted"] += 1
    print(f"fuzz: {tally}")
    assert tally["cases"] >= 100 and tally["refused"] >= 0.8 * tally["cases"]
