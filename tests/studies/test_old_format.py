"""A study written before the studies/ re-layout is read, resumed and extended by the current code."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from analysis import load_study as load_study_data
from studies import load_spec, open_storage, run_study, study_status

DATA = Path(__file__).resolve().parents[1] / "data" / "studies-v0"
FAKE = "studies._testing:fake_trial"


@pytest.fixture(params=["sqlite", "journal"])
def old_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A copy of the committed old-format study (SQLite file or journal file); its storage URL."""
    if request.param == "sqlite":
        shutil.copy(DATA / "study.db", tmp_path / "study.db")
        return f"sqlite:///{tmp_path / 'study.db'}"
    shutil.copy(DATA / "study.log", tmp_path / "study.log")
    return f"journal:///{tmp_path / 'study.log'}"


def test_old_study_reads(old_storage: str) -> None:
    status = study_status(old_storage, "old")
    assert status.counts() == {"complete": 4, "running": 0, "failed": 4, "waiting": 0}
    assert {c.last_error for c in status.cells if c.state == "failed"} == {"ValueError: seed 1 always fails"}
    data = load_study_data(old_storage, "old")
    assert len(data.trials) == 4 and set(data.trials["seed"]) == {0}
    assert data.factors == ("embedder.epochs",)
    assert data.trials["test_score"].notna().all() and data.trials["otdd_after"].notna().all()
    assert list(data.failures["error"]) == ["ValueError: seed 1 always fails"] * 4


def test_old_study_resumes_then_extends(old_storage: str, tmp_path: Path, fake_env: Path) -> None:
    spec = load_spec(DATA / "spec.yaml", validator=None)
    before = optuna.load_study(study_name="old", storage=open_storage(old_storage)).get_trials()
    report = run_study(spec, storage=old_storage, inline=True, trial_fn=FAKE, progress=False,
                       artifact_dir=str(tmp_path / "artifacts"), log=io.StringIO())
    assert report.exit_code == 0 and report.completed_now == 4 and report.complete == report.total == 8
    wider = load_spec(DATA / "spec.yaml", validator=None, seeds=[0, 1, 2])
    report = run_study(wider, storage=old_storage, inline=True, trial_fn=FAKE, progress=False, log=io.StringIO())
    assert report.complete == report.total == 12 and report.completed_now == 4
    after = optuna.load_study(study_name="old", storage=open_storage(old_storage)).get_trials()
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == 12
    # The old attempts survive the rewrite that widened the seed distribution, values and attrs intact.
    old_complete = {t.user_attrs["cell"]: t for t in before if t.state == TrialState.COMPLETE}
    for trial in complete:
        if trial.user_attrs["cell"] in old_complete:
            assert trial.value == old_complete[trial.user_attrs["cell"]].value
            assert trial.user_attrs["otdd_curve"] == old_complete[trial.user_attrs["cell"]].user_attrs["otdd_curve"]
    assert len(load_study_data(old_storage, "old").trials) == 12
