"""``export``, ``studies`` and the dashboard's start line, run in-process through the CLI."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from studies import StudySpec, run_study
from studies.cli import main
from studies.storage._dashboard import open_dashboard, serve_dashboard

DATA = Path(__file__).resolve().parents[1] / "data" / "studies-v0"


@pytest.fixture
def journal(tmp_path: Path) -> str:
    """A copy of the old-format study ``old`` (4 COMPLETE, 4 FAIL) as a journal file."""
    shutil.copy(DATA / "study.log", tmp_path / "study.log")
    return str(tmp_path / "study.log")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_one_tidy_row_per_trial(journal: str, tmp_path: Path, fmt: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / f"old.{fmt}"
    assert main(["export", "--storage", journal, "--study", "old", "--format", fmt, "--out", str(out)]) == 0
    assert f"{out}: 8 trials" in capsys.readouterr().out
    frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert list(frame["number"]) == list(range(8))
    assert sorted(frame["state"].value_counts().items()) == [("COMPLETE", 4), ("FAIL", 4)]
    for column in ("task", "seed", "embedder.epochs", "cell", "test_score", "otdd_after", "config.embedder.epochs",
                   "seconds", "error"):
        assert column in frame.columns, column
    complete = frame[frame["state"] == "COMPLETE"]
    assert (complete["value"] == complete["test_score"]).all()
    assert (complete["config.embedder.epochs"] == complete["embedder.epochs"]).all()
    assert json.loads(complete["otdd_curve"].iloc[0])[0] == 10.0  # lists are JSON text


def test_export_to_stdout_and_its_errors(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--storage", journal, "--out", "-"]) == 0  # the only study: no name needed
    assert capsys.readouterr().out.splitlines()[0].startswith("number,state,value,")
    assert main(["export", "--storage", journal, "--out", "-", "--format", "parquet"]) == 2
    assert "--out - writes to stdout" in capsys.readouterr().err
    assert main(["export", "--storage", journal, "--study", "olt"]) == 2
    assert "did you mean old?" in capsys.readouterr().err


def test_studies_lists_and_deletes_only_when_confirmed(journal: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["studies", "--storage", journal]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["study", "cells", "complete", "running", "failed", "waiting", "trials"]
    assert table[2].split() == ["old", "8", "4", "0", "4", "0", "8"]
    assert main(["studies", "--storage", journal, "--delete", "old"]) == 2
    assert "add --yes to confirm" in capsys.readouterr().err
    assert main(["studies", "--storage", journal]) == 0 and "old" in capsys.readouterr().out  # untouched
    assert main(["studies", "--storage", journal, "--delete", "old", "--yes"]) == 0
    assert "deleted study old (8 trials)" in capsys.readouterr().out
    assert main(["studies", "--storage", journal]) == 0
    assert "no studies in" in capsys.readouterr().out


def test_dashboard_start_line_names_the_default_storage(tmp_path: Path, fake_env: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = StudySpec.from_dict({"name": "tiny", "tasks": ["digits"], "seeds": [0]})
    run_study(spec, inline=True, trial_fn="studies._testing:fake_trial", progress=False, log=io.StringIO())
    board = open_dashboard(None)
    assert board.url == "sqlite:///orca-ablate.db" and board.artifact_dir == tmp_path / "orca-ablate-artifacts"
    calls: list[dict[str, object]] = []
    monkeypatch.setattr("optuna_dashboard.run_server", lambda storage, **kw: calls.append(kw))
    log = io.StringIO()
    serve_dashboard(board, log=log)
    assert "optuna-dashboard for sqlite:///orca-ablate.db at http://127.0.0.1:8080/dashboard" in log.getvalue()
    assert calls and calls[0]["artifact_store"] is not None
