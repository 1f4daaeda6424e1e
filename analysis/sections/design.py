"""The study's design: factors and levels, seeds, trials per task, trial states and failures (no tests)."""

from __future__ import annotations

import pandas as pd

from analysis._contrasts import level_text, ordered_levels, spec_levels
from analysis._figures import status_figure
from analysis._load import TRIAL
from analysis._render import Document
from analysis.sections._section import ReportView, Section
from harness import contract

__all__ = ["DESIGN"]

_TASK, _SEED = contract.PARAM_TASK, contract.PARAM_SEED
_MAX_FAILURES, _ERROR_CHARS = 20, 160


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    data = view.data
    df = data.trials
    items = []
    for f in data.factors:
        if f in df.columns:
            levels = ordered_levels(df[f].dropna().unique(), spec_levels(data.spec, f))
            items.append(f"`{f}`: {', '.join(level_text(v) for v in levels)}")
    doc.para("Factors and the levels with completed trials:")
    doc.bullets(items or ["(no factors)"])
    seeds = sorted(df[_SEED].dropna().unique().tolist())
    doc.para(f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}.")
    counts = df.groupby(_TASK).agg(trials=(TRIAL, "size"), seeds=(_SEED, "nunique")).reset_index()
    if contract.MODALITY in df.columns:
        counts = counts.merge(df.groupby(_TASK)[contract.MODALITY].first().reset_index(), on=_TASK)
    doc.table(counts)
    doc.image(status_figure(data.summary, view.out / "status.png"),
              "Trials by state (duplicates of a cell are not analysed).")
    doc.table(data.summary)
    if not data.failures.empty:
        doc.para(f"Failed trials ({len(data.failures)}; first {_MAX_FAILURES}):")
        failures = data.failures.head(_MAX_FAILURES)
        doc.table(failures.assign(**{contract.ERROR: failures[contract.ERROR].str.slice(0, _ERROR_CHARS)}))


DESIGN = Section("design", "Design", _render)
"""What was run: factors, levels, seeds, trial counts and states."""
