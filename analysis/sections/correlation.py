"""Does OTDD after alignment predict the score? Spearman over configuration means (seeds are clusters)."""

from __future__ import annotations

import pandas as pd

from analysis._columns import results_frame
from analysis._correlation import correlation_tests
from analysis._figures import otdd_score_figure
from analysis._load import factor_columns, otdd_scale_factors, otdd_strata, varying_factors
from analysis._render import Document
from analysis._rules import min_exact_p
from analysis.sections._section import ReportView, Section, TestInputs, pick
from harness import contract

__all__ = ["OTDD_CORRELATION"]

_ALPHA = 0.05
_AGGREGATES = ("config", "within")
"""Configurations are the units (primary); ``within``: seeds ranked and permuted only within their
configuration (secondary). Trial-level rows (seeds as if independent) are not reported."""
_SECONDARY_NOTE = "secondary: seed-level, permutations within configurations"


def _tests(inputs: TestInputs) -> pd.DataFrame:
    """Return Spearman rows of ``otdd_after`` ~ ``y`` per configuration (seeds averaged), per task and pooled."""
    df = inputs.trials
    if contract.OTDD_AFTER not in df.columns or df[contract.OTDD_AFTER].notna().sum() == 0:
        return results_frame([])  # a trial function that records no OTDD
    strata, scales = otdd_strata(df)  # OTDD of different proxies/bodies: correlated within each level
    configs = [c for c in factor_columns(df) if c not in scales]
    parts = [correlation_tests(strata, x=contract.OTDD_AFTER, y=inputs.y, aggregate=aggregate,
                               n_resamples=inputs.n_resamples, random_state=seed, config_columns=configs)
             for aggregate, seed in zip(_AGGREGATES, inputs.random_states, strict=True)]
    rows = pd.concat(parts, ignore_index=True)
    for i, row in rows.iterrows():  # a test that can never reject is "not testable", not evidence
        n = int(row["n"]) if pd.notna(row["n"]) else 0
        if row["variant"] == "within":
            rows.loc[i, "note"] = "; ".join(filter(None, [_SECONDARY_NOTE, row["note"]]))
            continue
        if row["task"] != "all" and min_exact_p(n) >= _ALPHA:
            needed = next(k for k in range(2, 12) if min_exact_p(k) < _ALPHA)
            rows.loc[i, "note"] = "; ".join(filter(None, [row["note"], f"not testable with {n} configurations "
                                                          f"(needs ≥ {needed}; smallest p {min_exact_p(n):.3g})"]))
    return rows


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    df, y = view.data.trials, view.y
    doc.heading(2, "Does OTDD after alignment predict the score?")
    if rows.empty:
        doc.para(f"No trial recorded `{contract.OTDD_AFTER}`; there is nothing to correlate.")
        return
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
    doc.para("Primary (`config`): configuration means (seeds averaged), exact permutations within tasks. "
             "Secondary (`within`): each trial, ranked and permuted only within its configuration: whether a "
             "configuration's seeds with lower OTDD score better; it says nothing about choosing configurations.")
    doc.table(pick(rows, ["task", "variant", "method", "n", "statistic", "ci_low", "ci_high", "p_val", "p_kind",
                          "p_adj", "note"]))


OTDD_CORRELATION = Section("otdd_correlation", "Evidence", _render, _tests, random_states=len(_AGGREGATES))
"""OTDD after alignment against the score, with its scatter plot."""
