"""The study report: the sections of :data:`analysis.sections.SECTIONS`, in Markdown, HTML, CSV and PNG."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from optuna.storages import BaseStorage

from analysis import sections as _registry
from analysis._columns import COLUMNS, AnalysisError, results_frame
from analysis._load import VALUE, StudyData, load_study
from analysis._latex import latex_tables
from analysis._render import Document, to_html, to_markdown
from analysis.sections import ReportView, Section, TestInputs, check_sections
from harness import contract

__all__ = ["run_all_tests", "write_report"]

_log = logging.getLogger(__name__)


def _section_rows(df: pd.DataFrame, sections: Sequence[Section], *, random_state: int, n_resamples: int,
                  margin: float | None, y: str, alpha: float | None = None,
                  baselines: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Return section name -> its rows (columns ``COLUMNS``; empty for a section without tests)."""
    total = sum(s.random_states for s in sections)
    stream = np.random.SeedSequence(random_state).generate_state(total).tolist() if total else []
    out: dict[str, pd.DataFrame] = {}
    used = 0
    for section in sections:
        seeds = tuple(int(v) for v in stream[used:used + section.random_states])
        used += section.random_states
        if section.tests is None:
            out[section.name] = results_frame([])
            continue
        rows = section.tests(TestInputs(df, y, margin, n_resamples, seeds, alpha, baselines))
        if tuple(rows.columns) != COLUMNS:
            raise AnalysisError(f"section {section.name!r} returned columns {list(rows.columns)}; its tests must "
                                "return exactly COLUMNS (build the rows with make_row and results_frame)")
        out[section.name] = rows
    return out


def _concat(rows: dict[str, pd.DataFrame], sections: Sequence[Section]) -> pd.DataFrame:
    parts = [rows[s.name] for s in sections if s.tests is not None]
    return pd.concat(parts, ignore_index=True) if parts else results_frame([])


def run_all_tests(df: pd.DataFrame, *, random_state: int = 0, n_resamples: int = 9999,
                  margin: float | None = None, y: str = contract.TEST_SCORE,
                  sections: Sequence[Section] | None = None, alpha: float | None = None,
                  baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return every test of the report as one table (columns ``COLUMNS``): the sections' rows in order.

    Input: the tidy trials frame of :func:`load_trials` (and ``StudyData.baselines`` for the
    baselines section). ``sections`` defaults to
    :data:`analysis.sections.SECTIONS`. Each resampling call gets its own seed from
    ``numpy.random.SeedSequence(random_state)``, handed out in section order, so the table is
    reproducible for a given ``random_state``. ``margin`` / ``alpha`` None: the spec's ``analysis:``
    (or the metric's defaults); values that differ from the recorded ones mark verdicts exploratory.
    """
    chosen = check_sections(_registry.SECTIONS if sections is None else sections)
    rows = _section_rows(df, chosen, random_state=random_state, n_resamples=n_resamples, margin=margin, y=y,
                         alpha=alpha, baselines=baselines)
    return _concat(rows, chosen)


def _publish(data: StudyData, out: Path, files: list[Path]) -> str:
    """Upload report files to the study's artifact store and add a dashboard note; return a status line."""
    if not data.artifact_dir or data.study is None:
        return ""
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    try:
        os.makedirs(data.artifact_dir, exist_ok=True)
        store = FileSystemArtifactStore(data.artifact_dir)
        ids = {f.name: upload_artifact(artifact_store=store, file_path=str(f), study_or_trial=data.study)
               for f in files}
    except OSError as exc:
        _log.warning("could not upload the report to %s: %s", data.artifact_dir, exc)
        return f"upload to {data.artifact_dir} failed: {exc}"
    study_id = data.study._study_id
    links = "\n".join(f"- [{name}](/artifacts/{study_id}/{aid}) (artifact `{aid}`)" for name, aid in ids.items())
    note = f"## Analysis report\n\nWritten {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n\n{links}\n"
    try:
        from optuna_dashboard import save_note
    except ImportError:
        return "uploaded; optuna-dashboard is not installed, so no note was written"
    save_note(data.study, note)
    return f"uploaded as artifacts {sorted(ids.values())} and linked from a dashboard note"


def _score_column(data: StudyData) -> str:
    """Return the score to analyse: the spec's metric when recorded, else test_score, else value."""
    for name in (str(data.spec.get(contract.METRIC, "")), contract.TEST_SCORE, VALUE):
        if name in data.trials.columns and data.trials[name].notna().any():
            return name
    return VALUE


def write_report(
    storage: str | BaseStorage,
    study_name: str,
    out_dir: str | os.PathLike[str],
    *,
    random_state: int = 0,
    n_resamples: int = 9999,
    margin: float | None = None,
    alpha: float | None = None,
    sections: Sequence[Section] | None = None,
    publish: bool = True,
) -> Path:
    """Return the path of ``report.md`` after writing the study's report into ``out_dir``.

    Writes ``report.md``, a self-contained ``report.html`` (figures as base64 PNG), ``tests.csv``
    (every section's test rows, columns ``COLUMNS``) and the figure PNGs; ``sections`` defaults to
    :data:`analysis.sections.SECTIONS`. When the study has an ``artifact_dir`` user attr, the HTML,
    Markdown and CSV are uploaded as study artifacts and a dashboard note links them.
    ``random_state`` seeds every resampling and is recorded. ``margin`` and ``alpha`` override the
    spec's ``analysis:`` (recorded in the report; verdicts under changed values read exploratory).
    Also writes ``tables.tex``: the hypothesis summary and evidence as booktabs LaTeX tables.
    ``publish=False`` (``report --no-upload``) leaves the storage untouched: nothing is uploaded.
    """
    chosen = check_sections(_registry.SECTIONS if sections is None else sections)
    data = load_study(storage, study_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = _score_column(data)
    rows = _section_rows(data.trials, chosen, random_state=random_state, n_resamples=n_resamples, margin=margin,
                         y=y, alpha=alpha, baselines=data.baselines)
    tests = _concat(rows, chosen)
    tests.to_csv(out / "tests.csv", index=False)
    (out / "tables.tex").write_text(latex_tables(tests, data.spec or {}), encoding="utf-8")
    doc = Document(f"orca-ablate report: study `{study_name}`")
    doc.para(f"{len(data.trials)} completed trials over {data.trials[contract.PARAM_TASK].nunique()} task(s); "
             f"score `{y}`; random_state = {random_state}, {n_resamples} resamples; margin "
             f"{'from the spec' if margin is None else f'{margin:g} (command line)'}, alpha "
             f"{'from the spec' if alpha is None else f'{alpha:g} (command line)'}.")
    view = ReportView(data, rows, tests, out, y, margin, n_resamples, random_state, alpha)
    chapter = None
    for section in chosen:
        if section.chapter != chapter:
            chapter = section.chapter
            doc.heading(1, chapter)
        section.render(doc, view, rows[section.name])
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(to_markdown(doc), encoding="utf-8")
    html_path.write_text(to_html(doc), encoding="utf-8")
    status = _publish(data, out, [html_path, md_path, out / "tests.csv", out / "tables.tex"]) if publish else ""
    if status:
        _log.info("report of %s: %s", study_name, status)
    return md_path
