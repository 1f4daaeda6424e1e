"""The one column definition shared by every test table, and the project's analysis error."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["COLUMNS", "NOT_ENOUGH_DATA", "AnalysisError", "make_row", "results_frame"]

COLUMNS: tuple[str, ...] = (
    "hypothesis",  # the spec id of the hypothesis (hypothesis rows), else empty
    "test",  # kind of test: hypothesis, correlation, anova (blocked F), contrast, friedman, wilcoxon, power
    "kind",  # hypothesis kind: no_change | no_gain | not_worse | helps | predicts | no_prediction | all_of
    "verdict",  # supported | contradicted | inconclusive | not evaluated (hypothesis rows)
    "exploratory",  # why the verdict is exploratory (margin, alpha or hypotheses differ from the recorded ones)
    "task",  # task name, or "all" for a hypothesis's combined row / a row pooled across tasks
    "variant",  # config (correlation); paired | unpaired | matched (contrast); blocked | unblocked (anova);
    #             summary | task | level (hypothesis)
    "factor",  # factor path, e.g. embedder.epochs
    "level",  # the level compared (contrast), as text
    "reference",  # the level it is compared with, as text
    "method",  # the statistic or model, in words
    "x",  # predictor column (correlation)
    "y",  # response column
    "n",  # observations behind the statistic (trials, configurations, seeds or tasks)
    "statistic",  # rho, tau, r, t, F, chi-square, W
    "df",  # degrees of freedom (numerator for F)
    "df2",  # denominator degrees of freedom for F
    "p_val",  # the test's p-value
    "p_kind",  # exact | permutation | t | F | chi2 | tost | ...
    "p_perm",  # sign-flip or label permutation p-value reported beside a parametric p_val
    "family",  # the declared family that p_adj corrects over
    "correction",  # holm | fdr_bh | none
    "p_adj",  # p_val corrected within family
    "margin",  # the hypothesis's margin m on the difference scale (rho_weak for predicts / no_prediction)
    "p_support",  # p of the test whose rejection supports the hypothesis (TOST, or a one-sided bound)
    "p_contra",  # p of the test whose rejection contradicts it
    "estimate",  # mean difference (level - reference) or coefficient
    "ci_low",  # confidence interval of estimate (contrast) or of statistic (correlation)
    "ci_high",
    "confidence",  # confidence level of [ci_low, ci_high], e.g. 0.95
    "effect_size",  # rho, r, tau, partial eta squared, Hedges' g, d_z
    "effect_type",  # name of effect_size
    "alternative",  # two-sided | greater | less | equivalence
    "power",  # target power (power rows)
    "n_needed",  # seeds needed for that power (power rows)
    "underpowered",  # True when the study has fewer than n_needed seeds
    "note",  # why a statistic is missing, or caveats ("not enough data")
)
"""Columns of every table that an analysis test returns, in order."""

NOT_ENOUGH_DATA = "not enough data"

_TEXT = {
    "test", "kind", "hypothesis", "verdict", "exploratory", "task", "variant", "factor", "level", "reference",
    "method", "x", "y", "p_kind", "family", "correction", "effect_type", "alternative", "note",
}
_INT = {"n", "n_needed"}


class AnalysisError(ValueError):
    """A problem with the user's input (study, storage, frame or option); the CLI prints it as one line."""

    user_error = True


def make_row(**values: Any) -> dict[str, Any]:
    """Return one result row with every column in ``COLUMNS``; unknown names are an error.

    Missing text columns become ``""``, missing numbers ``NaN``; ``note`` collects caveats.
    """
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise KeyError(f"unknown result columns {sorted(unknown)}; expected names from COLUMNS")
    row: dict[str, Any] = {}
    for name in COLUMNS:
        value = values.get(name)
        if name in _TEXT:
            row[name] = "" if value is None else str(value)
        elif name == "underpowered":
            row[name] = pd.NA if value is None else bool(value)
        else:
            row[name] = np.nan if value is None else value
    return row


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Return the rows as a DataFrame with exactly ``COLUMNS``, text as ``str`` and numbers as float."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    for name in COLUMNS:
        if name in _TEXT:
            frame[name] = frame[name].fillna("").astype(str)
        elif name == "underpowered":
            frame[name] = frame[name].astype("boolean")
        elif name in _INT:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("Int64")
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame.reset_index(drop=True)
