"""docs/results: the committed trial files regenerate the committed tests.csv exactly, and stay untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from analysis import write_report

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"
STUDIES = ("proxy", "embedder-epochs", "freezing", "pretraining", "objective", "defaults")


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_committed_trials_reproduce_the_committed_tests_csv(study: str, tmp_path: Path) -> None:
    journal = RESULTS / study / "trials.log"
    before = hashlib.sha256(journal.read_bytes()).hexdigest()
    write_report(f"journal:{journal}", study, tmp_path, publish=False)
    assert (tmp_path / "tests.csv").read_bytes() == (RESULTS / study / "tests.csv").read_bytes()
    assert (tmp_path / "tables.tex").read_text() == (RESULTS / study / "tables.tex").read_text()
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == before  # --no-upload writes nothing there
