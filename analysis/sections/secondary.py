"""Secondary metrics: the level-vs-reference contrasts of every factor for each other metric a trial records.

A harness trial records every metric of its output kind on the test split (accuracy and
macro-F1 for classes; AUROC and mAP for multilabel); a ``trial_fn`` may return more. The
primary metric (the spec's ``metric``) carries the verdicts; these tables are descriptive
companions, each Holm-corrected over its own factor, and never enter a hypothesis.
"""

from __future__ import annotations

import pandas as pd

from analysis._columns import results_frame
from analysis._factors import factor_tests
from analysis._hypotheses import one_per_cell
from analysis._load import varying_factors
from analysis._render import Document
from analysis.sections._section import ReportView, Section, TestInputs, pick

__all__ = ["SECONDARY"]

_CONTRAST = "contrast"


def _tests(inputs: TestInputs) -> pd.DataFrame:
    """Return the ``contrast`` rows of :func:`analysis.factor_tests` for every secondary metric and factor."""
    df, _ = one_per_cell(inputs.trials)
    secondary = [m for m in (inputs.trials.attrs.get("secondary") or {}) if m in df.columns and m != inputs.y]
    factors = varying_factors(df)
    (seed,) = inputs.random_states
    parts = []
    for metric in secondary:
        if df[metric].notna().sum() == 0:
            continue
        rows = factor_tests(df, factors, y=metric, n_resamples=inputs.n_resamples, random_state=seed)
        parts.append(rows[rows["test"] == _CONTRAST])
    return pd.concat(parts, ignore_index=True) if parts else results_frame([])


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    directions = view.data.trials.attrs.get("secondary") or {}
    doc.heading(2, "Secondary metrics")
    doc.para("Every other test-split metric the trials recorded, with the same contrasts as the factor "
             "tables above (per-seed means, paired by seed, Holm-corrected over each factor). They describe; "
             "the verdicts come from the spec's metric only.")
    for metric, part in rows.groupby("y", sort=False):
        better = "lower is better" if directions.get(metric) == "minimize" else "higher is better"
        doc.heading(3, f"`{metric}` ({better}; difference = level - reference)")
        doc.table(pick(part, ["factor", "task", "level", "reference", "variant", "n", "estimate", "ci_low", "ci_high",
                              "effect_size", "effect_type", "p_val", "p_adj", "note"]))


SECONDARY = Section("secondary", "Evidence", _render, _tests, random_states=1)
"""Contrast tables of the secondary metrics (descriptive; no verdicts)."""
