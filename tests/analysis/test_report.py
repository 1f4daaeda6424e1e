"""The report: files, order of sections, robustness to thin studies, artifacts, and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pandas as pd
import pytest
from analysis_synthetic import build_study
from optuna.artifacts import get_all_artifact_meta

from analysis import COLUMNS, NOT_ENOUGH_DATA, write_report
from studies.cli import main

FACTORS = {"embedder.proxy": ["cifar", "fake"], "embedder.epochs": [0, 5, 20], "finetune.freeze": ["none", "body"]}


def score(task: str, seed: int, cell: dict, rng: object) -> float:
    return 0.8 - (0.2 if cell["finetune.freeze"] == "body" else 0.0) + 0.01 * seed


BODY_CRITICAL = {"id": "body-critical", "says": "a trained body beats a frozen one", "kind": "helps",
                 "factor": "finetune.freeze", "groups": {"body trained": ["none"], "body frozen": ["body"]},
                 "level": "body trained", "reference": "body frozen"}


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("failing")
    url = build_study(root, "s", factors=FACTORS, tasks=("ecg", "digits"), seeds=(0, 1, 2), score=score, n_fail=2,
                      n_duplicates=1, artifact_dir=str(root / "artifacts"), hypotheses=[BODY_CRITICAL])
    return url, root


@pytest.fixture(scope="module")
def report(failing: tuple[str, Path]) -> Path:
    url, root = failing
    return write_report(url, "s", root / "report", random_state=7, n_resamples=199)


def test_report_files(report: Path) -> None:
    out = report.parent
    assert report.name == "report.md"
    for name in ("report.html", "tests.csv", "tables.tex", "otdd_vs_score.png", "otdd_curves.png", "status.png",
                 "factor_embedder_proxy.png", "factor_finetune_freeze.png"):
        assert (out / name).stat().st_size > 0, name
    tests = pd.read_csv(out / "tests.csv", keep_default_na=False, dtype=str)
    assert tuple(tests.columns) == COLUMNS
    assert {"hypothesis", "correlation", "anova", "contrast", "power"} <= set(tests["test"])
    assert "mixedlm" not in set(tests["test"])  # the mixed model is dropped (issue 13, item 6)
    assert set(tests.loc[tests["test"] == "anova", "variant"]) == {"blocked"}
    assert set(tests.loc[tests["test"] == "hypothesis", "hypothesis"]) == {"body-critical"}
    assert "trial" not in set(tests.loc[tests["test"] == "correlation", "variant"])  # no pseudo-replicated rows
    assert "\\toprule" in (out / "tables.tex").read_text(encoding="utf-8")


def test_report_opens_with_verdicts_then_evidence_then_design(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    heads = [text.index(h) for h in ("# What the study says", "## Evidence", "## Design", "## Reproducibility")]
    assert heads == sorted(heads)
    assert re.search(r"\| body-critical \| a trained body beats a frozen one \| supported \|", text)
    assert "random_state = 7" in text and "random_state: 7" in text
    assert "Failed trials (2" in text and "DUPLICATE" in text


def test_html_is_self_contained(report: Path) -> None:
    html = (report.parent / "report.html").read_text(encoding="utf-8")
    images = re.findall(r"<img [^>]*src='([^']+)'", html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    assert "<table>" in html and "body-critical" in html


def test_report_is_uploaded_and_noted(failing: tuple[str, Path], report: Path) -> None:
    url, root = failing
    study = optuna.load_study(study_name="s", storage=url)
    names = {meta.filename for meta in get_all_artifact_meta(study)}
    assert {"report.html", "report.md", "tests.csv"} <= names
    notes = [v for k, v in study._storage.get_study_system_attrs(study._study_id).items() if "note_str" in k]
    assert notes and "/artifacts/" in "".join(notes)
    assert len(list((root / "artifacts").iterdir())) >= 3


def test_tests_csv_is_reproducible(failing: tuple[str, Path], report: Path, tmp_path: Path) -> None:
    url, _ = failing
    again = write_report(url, "s", tmp_path / "again", random_state=7, n_resamples=199)
    first = pd.read_csv(report.parent / "tests.csv")
    pd.testing.assert_frame_equal(first, pd.read_csv(again.parent / "tests.csv"))


@pytest.mark.parametrize(("tasks", "seeds"), [(("ecg",), (0, 1, 2)), (("ecg", "digits"), (0,))])
def test_thin_studies_render_with_notes(tmp_path: Path, tasks: tuple[str, ...], seeds: tuple[int, ...]) -> None:
    url = build_study(tmp_path, "thin", factors={"embedder.proxy": ["cifar", "fake"]}, tasks=tasks, seeds=seeds,
                      n_fail=1)
    path = write_report(url, "thin", tmp_path / "out", n_resamples=99)
    tests = pd.read_csv(path.parent / "tests.csv", keep_default_na=False, dtype=str)
    assert tests["note"].str.contains(NOT_ENOUGH_DATA).any()
    assert (path.parent / "report.html").exists()


def test_cli_writes_the_report_and_prints_its_path(failing: tuple[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = failing
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--storage", url, "--study", "s", "--n-resamples", "99"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed) == Path("reports") / "s" / "report.md" and (tmp_path / printed).exists()
    out = tmp_path / "elsewhere"
    assert main(["report", "--storage", url, "--study-name", "s", "--out", str(out), "--random-state", "3",
                 "--n-resamples", "99"]) == 0
    assert "random_state = 3" in (out / "report.md").read_text(encoding="utf-8")


def test_cli_missing_study_is_exit_2_with_a_message(failing: tuple[str, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = failing
    assert main(["report", "--storage", url, "--study", "nope", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "orca-ablate report: error: no study 'nope'" in err and "['s']" in err


def test_report_warns_that_otdd_to_different_proxies_is_not_one_scale(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert "Caution: this study varies `embedder.proxy`" in text
    assert "95% CI band; colour: embedder.proxy, embedder.epochs, finetune.freeze." in text


def test_otdd_figure_colours_configurations_and_factor_figure_shows_seeds(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from analysis import _figures

    rows = [{"task": "t", "seed": s, "embedder.proxy": p, "otdd_after": 1.0 + 0.1 * s + (0.5 if p == "fake" else 0),
             "test_score": 0.5 + 0.01 * s} for s in range(4) for p in ("vocab", "fake")]
    df = pd.DataFrame(rows)
    drawn: list[Figure] = []
    real_save = _figures._save

    def keep(fig: Figure, path: Path) -> Path:
        drawn.append(fig)
        return real_save(fig, path)

    _figures._save = keep
    try:
        assert _figures.otdd_score_figure(df, tmp_path / "a.png", by=["embedder.proxy"]) is not None
        assert _figures.factor_figure(df, "embedder.proxy", tmp_path / "b.png") is not None
        assert _figures.otdd_score_figure(df, tmp_path / "c.png") is not None
    finally:
        _figures._save = real_save
    labels = sorted(t.get_text() for t in drawn[0].axes[0].get_legend().get_texts())
    assert labels == ["embedder.proxy=fake", "embedder.proxy=vocab"]
    seed_points = [c for c in drawn[1].axes[0].collections if len(c.get_offsets()) == 4]
    assert len(seed_points) == 2  # four seeds beside each of the two means
    assert drawn[2].axes[0].get_legend() is None  # no grouping asked: one colour, no legend


def test_otdd_figure_legend_follows_the_level_order(tmp_path: Path) -> None:
    from analysis import _figures

    rows = [{"task": "t", "seed": s, "embedder.epochs": e, "otdd_after": 2.0 - 0.01 * e + 0.001 * s,
             "test_score": 0.5 + 0.01 * s} for s in range(3) for e in (0, 4, 16, 48)]
    df = pd.DataFrame(rows)
    drawn = []
    real_save = _figures._save
    _figures._save = lambda fig, path: (drawn.append(fig), real_save(fig, path))[1]
    try:
        _figures.otdd_score_figure(df, tmp_path / "a.png", by=["embedder.epochs"])
    finally:
        _figures._save = real_save
    labels = [t.get_text() for t in drawn[0].axes[0].get_legend().get_texts()]
    assert labels == [f"embedder.epochs={e}" for e in (0, 4, 16, 48)]  # not text order 0, 16, 4, 48


def test_cli_margin_and_alpha_are_recorded_and_mark_verdicts_exploratory(failing: tuple[str, Path],
                                                                          tmp_path: Path) -> None:
    url, _ = failing
    out = tmp_path / "exploratory"
    assert main(["report", "--storage", url, "--study", "s", "--out", str(out), "--n-resamples", "49",
                 "--margin", "0.05", "--alpha", "0.1"]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "margin 0.05 (command line), alpha 0.1 (command line)" in text and "exploratory: margin 0.05" in text
    tests = pd.read_csv(out / "tests.csv", keep_default_na=False, dtype=str)
    rows = tests[tests["test"] == "hypothesis"]
    assert (rows["exploratory"].str.startswith("exploratory")).all() and set(rows["margin"]) <= {"0.05", ""}
