"""The report is its registry of sections: one entry adds rows to tests.csv and a part to the report."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pandas as pd
import pytest
from analysis_synthetic import build_study, trials_frame

import analysis
from analysis import COLUMNS, AnalysisError, make_row, results_frame, run_all_tests, write_report
from analysis import sections as registry
from analysis._render import Document
from analysis.sections import ReportView, Section, TestInputs, pick


def _dummy_tests(inputs: TestInputs) -> pd.DataFrame:
    (seed,) = inputs.random_states
    rows = [make_row(test="dummy", task=str(task), n=len(part), statistic=float(part[inputs.y].mean()),
                     note=f"seed {seed}")
            for task, part in inputs.trials.groupby("task", sort=True)]
    return results_frame(rows)


def _dummy_render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    doc.heading(2, "A dummy test of the mean score")
    doc.table(pick(rows, ["task", "n", "statistic"]))


DUMMY = Section("dummy", "Evidence", _dummy_render, _dummy_tests, random_states=1)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_study(tmp_path_factory.mktemp("sections"), "s", tasks=("ecg", "digits"), seeds=(0, 1, 2))


def test_one_registry_entry_adds_rows_to_tests_csv_and_a_part_to_the_report(
        study: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = pd.read_csv(write_report(study, "s", tmp_path / "before", n_resamples=99).parent / "tests.csv")
    monkeypatch.setattr(registry, "SECTIONS", [*registry.SECTIONS, DUMMY])
    path = write_report(study, "s", tmp_path / "after", n_resamples=99)
    tests = pd.read_csv(path.parent / "tests.csv", keep_default_na=False, dtype=str)
    assert tuple(tests.columns) == COLUMNS
    dummy = tests[tests["test"] == "dummy"]
    assert sorted(dummy["task"]) == ["digits", "ecg"] and (dummy["n"] == "6").all()  # 3 seeds x 2 proxies
    # Appended last, it takes the next seed of the stream: every earlier row is unchanged.
    after = pd.read_csv(path.parent / "tests.csv")
    pd.testing.assert_frame_equal(after.iloc[:len(before)], before)
    text = path.read_text(encoding="utf-8")
    assert "### A dummy test of the mean score" in text
    assert text.index("## Reproducibility") < text.index("A dummy test")  # its chapter reopens after the last
    assert f"tests.csv` ({len(tests)} rows)" in text


def test_run_all_tests_is_the_sections_rows_in_registry_order() -> None:
    df = trials_frame(tasks=("ecg", "digits"), seeds=(0, 1, 2), noise=0.01)
    everything = run_all_tests(df, n_resamples=99)
    only = run_all_tests(df, n_resamples=99, sections=[DUMMY])
    assert tuple(only.columns) == COLUMNS and set(only["test"]) == {"dummy"}
    assert "dummy" not in set(everything["test"])
    kinds = list(dict.fromkeys(everything["test"]))
    assert kinds[:2] == ["contrast", "correlation"]  # hypotheses (default contrasts) first, then correlations
    assert kinds[-2:] == ["power", "level_mean"]  # the factor section's power rows, then its level means


def test_a_section_with_other_columns_is_rejected_by_name() -> None:
    bad = Section("bad", "Evidence", _dummy_render, lambda inputs: pd.DataFrame({"pval": [0.5]}))
    with pytest.raises(AnalysisError, match="section 'bad'.*exactly COLUMNS"):
        run_all_tests(trials_frame(), n_resamples=99, sections=[bad])


def test_section_names_must_be_unique() -> None:
    with pytest.raises(AnalysisError, match=r"unique names; \['dummy'\]"):
        run_all_tests(trials_frame(), n_resamples=99, sections=[DUMMY, DUMMY])


def test_every_section_module_is_registered_once() -> None:
    found = []
    for info in pkgutil.iter_modules(registry.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{registry.__name__}.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, Section)]
    assert found and sorted(s.name for s in found) == sorted(s.name for s in registry.SECTIONS)
    assert len({s.name for s in registry.SECTIONS}) == len(registry.SECTIONS)


def test_sections_public_names_resolve() -> None:
    for name in registry.__all__:
        assert getattr(registry, name) is not None, name
    assert analysis.write_report is write_report
