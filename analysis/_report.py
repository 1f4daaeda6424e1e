"""The study report: claims in plain words, then the evidence, then the design; Markdown, HTML, CSV, PNG."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
import numpy as np
import pandas as pd
from optuna.storages import BaseStorage

from analysis._claims import claims
from analysis._columns import NOT_ENOUGH_DATA
from analysis._contrasts import level_text, ordered_levels, spec_levels
from analysis._correlation import correlation_tests
from analysis._factors import factor_tests
from analysis._figures import curves_figure, factor_figure, otdd_score_figure, status_figure
from analysis._load import StudyData, factor_columns, load_study, otdd_scale_factors, otdd_strata
from analysis._power import seeds_needed
from analysis._render import Document, to_html, to_markdown

__all__ = ["run_all_tests", "write_report"]

_log = logging.getLogger(__name__)

_PLAIN = {
    "supported": "the data support it",
    "contradicted": "the data contradict it",
    "inconclusive": "the data cannot decide it",
    "not evaluated": "not tested",
}


def _varying(df: pd.DataFrame) -> list[str]:
    return [f for f in factor_columns(df) if df[f].nunique(dropna=True) >= 2]


def run_all_tests(df: pd.DataFrame, *, random_state: int = 0, n_resamples: int = 9999,
                  margin: float = 0.01, y: str = "test_score") -> pd.DataFrame:
    """Return every test of the report as one table (columns ``COLUMNS``).

    Input: the tidy trials frame of :func:`load_trials`. Each test gets its own seed drawn from
    ``numpy.random.SeedSequence(random_state)``, so the table is reproducible for a given
    ``random_state`` and does not depend on which tests ran before.
    """
    factors = _varying(df)
    seeds = iter(np.random.SeedSequence(random_state).generate_state(4).tolist())
    parts = [claims(df, margin=margin, y=y, n_resamples=n_resamples, random_state=next(seeds))]
    strata, scales = otdd_strata(df)  # OTDD of different proxies/bodies: correlated within each level
    configs = [c for c in factor_columns(df) if c not in scales]
    for aggregate in ("trial", "config"):
        parts.append(correlation_tests(strata, x="otdd_after", y=y, aggregate=aggregate, n_resamples=n_resamples,
                                       random_state=next(seeds), config_columns=configs))
    # One call for every factor, so each task's OLS and mixed models are fitted once.
    parts.append(factor_tests(df, factors, y=y, n_resamples=n_resamples, random_state=next(seeds)))
    for factor in factors:
        parts.append(seeds_needed(df, factor, y=y))
    return pd.concat(parts, ignore_index=True)


def _pick(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[[c for c in columns if c in frame.columns]].reset_index(drop=True)


def _verdicts(doc: Document, tests: pd.DataFrame, margin: float) -> None:
    doc.heading(1, "What the study says about the paper's claims")
    doc.para(f"Each claim of García-de-Herreros et al. (2024) is a hypothesis tested on this study's trials. "
             f"Differences compare per-seed means (paired by seed), with Holm correction within each claim; "
             f"'no change' claims need an equivalence test within ±{margin:g} of the score.")
    summary = tests[(tests["test"] == "claim") & (tests["variant"] == "summary")]
    items = []
    for row in summary.itertuples():
        words = _PLAIN.get(row.verdict, row.verdict)
        items.append(f"**Claim {row.claim} — {row.verdict}.** {row.hypothesis} In words: {words}"
                     + (f" ({row.note})." if row.note else "."))
    doc.bullets(items)


def _evidence(doc: Document, data: StudyData, tests: pd.DataFrame, out: Path, y: str) -> None:
    df = data.trials
    doc.heading(1, "Evidence")
    doc.heading(2, "Claims, test by test")
    evidence = tests[(tests["test"] == "claim") & (tests["variant"] != "summary")]
    doc.table(_pick(evidence, ["claim", "task", "variant", "level", "reference", "n", "estimate", "ci_low",
                               "ci_high", "statistic", "p_adj", "p_margin_adj", "verdict", "note"]))
    doc.heading(2, "Does OTDD after alignment predict the score?")
    varying = _varying(df)
    path = otdd_score_figure(df, out / "otdd_vs_score.png", y=y, by=varying)
    if path:
        doc.image(path, f"{y} against OTDD after alignment, per task, with an OLS line and its 95% CI band"
                  + (f"; colour: {', '.join(varying)}." if varying else "."))
    scales = otdd_scale_factors(df)
    if scales:
        doc.para(f"Caution: this study varies {', '.join(f'`{f}`' for f in scales)}, so OTDD is measured "
                 f"against different reference data or in different embedding spaces across its configurations; "
                 f"values of different levels are not on one scale, and a correlation pooled over them mixes "
                 f"the two. The correlations below and claim 4 are therefore taken within each level (strata "
                 f"named 'task | factor=level'); read the plot within each colour, not across.")
    corr = tests[tests["test"] == "correlation"]
    doc.table(_pick(corr, ["task", "variant", "method", "n", "statistic", "ci_low", "ci_high", "p_val", "p_kind",
                           "p_adj", "note"]))
    for factor in _varying(df):
        doc.heading(2, f"Factor `{factor}`")
        slug = "".join(ch if ch.isalnum() else "_" for ch in factor)
        path = factor_figure(df, factor, out / f"factor_{slug}.png", y=y)
        if path:
            doc.image(path, f"Mean {y} per level of {factor} with 95% t CIs over seeds (grey: each seed), per task.")
        rows = tests[tests["factor"] == factor]
        doc.para("Contrasts against the reference level (per-seed means, Holm-corrected over the factor):")
        doc.table(_pick(rows[rows["test"] == "contrast"],
                        ["task", "level", "reference", "variant", "n", "estimate", "ci_low", "ci_high", "effect_size",
                         "effect_type", "p_val", "p_perm", "p_adj", "note"]))
        doc.para("Models per task (OLS type II ANOVA, mixed model with a seed random intercept) and across tasks:")
        doc.table(_pick(rows[rows["test"].isin(["anova", "mixedlm", "friedman", "wilcoxon"])],
                        ["test", "task", "level", "reference", "n", "statistic", "df", "df2", "p_val", "p_adj",
                         "effect_size", "effect_type", "note"]))
        doc.para("Seeds needed for 80% power at alpha = 0.05 to detect the observed effect:")
        doc.table(_pick(rows[rows["test"] == "power"],
                        ["task", "level", "reference", "variant", "effect_size", "effect_type", "n", "n_needed",
                         "underpowered", "note"]))
    doc.heading(2, "OTDD during embedder training")
    path = curves_figure(data.curves, out / "otdd_curves.png")
    if path:
        doc.image(path, "Mean OTDD per alignment epoch (band: ±1 SD over trials), per task.")
    else:
        doc.para(f"No OTDD curves were recorded ({NOT_ENOUGH_DATA}).")


def _design(doc: Document, data: StudyData, out: Path) -> None:
    df = data.trials
    doc.heading(1, "Design")
    items = []
    for f in data.factors:
        if f in df.columns:
            levels = ordered_levels(df[f].dropna().unique(), spec_levels(data.spec, f))
            items.append(f"`{f}`: {', '.join(level_text(v) for v in levels)}")
    doc.para("Factors and the levels with completed trials:")
    doc.bullets(items or ["(no factors)"])
    seeds = sorted(df["seed"].dropna().unique().tolist())
    doc.para(f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}.")
    counts = df.groupby("task").agg(trials=("trial", "size"), seeds=("seed", "nunique")).reset_index()
    if "modality" in df.columns:
        counts = counts.merge(df.groupby("task")["modality"].first().reset_index(), on="task")
    doc.table(counts)
    doc.image(status_figure(data.summary, out / "status.png"),
              "Trials by state (duplicates of a cell are not analysed).")
    doc.table(data.summary)
    if not data.failures.empty:
        doc.para(f"Failed trials ({len(data.failures)}; first 20):")
        failures = data.failures.head(20).assign(error=lambda f: f["error"].str.slice(0, 160))
        doc.table(failures)


def _versions() -> str:
    names = ["optuna", "numpy", "scipy", "statsmodels", "pandas", "matplotlib"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


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
    for name in (str(data.spec.get("metric", "")), "test_score", "value"):
        if name in data.trials.columns and data.trials[name].notna().any():
            return name
    return "value"


def write_report(
    storage: str | BaseStorage,
    study_name: str,
    out_dir: str | os.PathLike[str],
    *,
    random_state: int = 0,
    n_resamples: int = 9999,
    margin: float = 0.01,
) -> Path:
    """Return the path of ``report.md`` after writing the study's report into ``out_dir``.

    Writes ``report.md``, a self-contained ``report.html`` (figures as base64 PNG), ``tests.csv``
    (every test row, columns ``COLUMNS``) and the figure PNGs. When the study has an
    ``artifact_dir`` user attr, the HTML, Markdown and CSV are uploaded as study artifacts and a
    dashboard note links them. ``random_state`` seeds every resampling and is recorded.
    """
    data = load_study(storage, study_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = _score_column(data)
    tests = run_all_tests(data.trials, random_state=random_state, n_resamples=n_resamples, margin=margin, y=y)
    tests.to_csv(out / "tests.csv", index=False)
    doc = Document(f"orca-ablate report: study `{study_name}`")
    doc.para(f"{len(data.trials)} completed trials over {data.trials['task'].nunique()} task(s); score `{y}`; "
             f"random_state = {random_state}, {n_resamples} resamples, margin {margin:g}.")
    _verdicts(doc, tests, margin)
    _evidence(doc, data, tests, out, y)
    _design(doc, data, out)
    doc.heading(1, "Reproducibility")
    doc.bullets([f"random_state: {random_state} (every bootstrap and permutation is seeded from it)",
                 f"n_resamples: {n_resamples}", f"equivalence margin: {margin:g}; alpha: 0.05",
                 f"every test row: `tests.csv` ({len(tests)} rows)", f"versions: {_versions()}"])
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(to_markdown(doc), encoding="utf-8")
    html_path.write_text(to_html(doc), encoding="utf-8")
    status = _publish(data, out, [html_path, md_path, out / "tests.csv"])
    if status:
        _log.info("report of %s: %s", study_name, status)
    return md_path

