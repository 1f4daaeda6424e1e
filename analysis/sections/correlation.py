"""Does OTDD after alignment predict the score? Spearman over trials and over configuration means."""

from __future__ import annotations

import pandas as pd

from analysis._correlation import correlation_tests
from analysis._figures import otdd_score_figure
from analysis._load import factor_columns, otdd_scale_factors, otdd_strata, varying_factors
from analysis._render import Document
from analysis.sections._section import ReportView, Section, TestInputs, pick
from harness import contract

__all__ = ["OTDD_CORRELATION"]

_AGGREGATES = ("trial", "config")


def _tests(inputs: TestInputs) -> pd.DataFrame:
    """Return Spearman rows of ``otdd_after`` ~ ``y``: per trial, then per configuration (seeds averaged)."""
    df = inputs.trials
    strata, scales = otdd_strata(df)  # OTDD of different proxies/bodies: correlated within each level
    configs = [c for c in factor_columns(df) if c not in scales]
    parts = [correlation_tests(strata, x=contract.OTDD_AFTER, y=inputs.y, aggregate=aggregate,
                               n_resamples=inputs.n_resamples, random_state=seed, config_columns=configs)
             for aggregate, seed in zip(_AGGREGATES, inputs.random_states, strict=True)]
    return pd.concat(parts, ignore_index=True)


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    df, y = view.data.trials, view.y
    doc.heading(2, "Does OTDD after alignment predict the score?")
    varying = varying_factors(df)
    path = otdd_score_figure(df, view.out / "otdd_vs_score.png", y=y, by=varying)
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
    doc.table(pick(rows, ["task", "variant", "method", "n", "statistic", "ci_low", "ci_high", "p_val", "p_kind",
                          "p_adj", "note"]))


OTDD_CORRELATION = Section("otdd_correlation", "Evidence", _render, _tests, random_states=len(_AGGREGATES))
"""OTDD after alignment against the score, with its scatter plot."""
