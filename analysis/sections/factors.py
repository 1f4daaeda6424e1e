"""One subsection per varying factor: contrasts, the blocked F per task, tests across tasks, and seeds needed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis._columns import make_row, results_frame
from analysis._contrasts import level_text, mean_ci, ordered_levels, per_seed, spec_levels
from analysis._factors import factor_tests
from analysis._figures import factor_figure
from analysis._hypotheses import one_per_cell
from analysis._load import varying_factors
from analysis._power import seeds_needed
from analysis._render import Document
from analysis.sections._section import ReportView, Section, TestInputs, pick
from harness import contract

__all__ = ["FACTORS"]

_TASK, _SEED = contract.PARAM_TASK, contract.PARAM_SEED
_LEVEL_MEAN = "level_mean"

_MODEL_TESTS = ("anova", "friedman", "wilcoxon")


def _tests(inputs: TestInputs) -> pd.DataFrame:
    """Return :func:`analysis.factor_tests` rows of every varying factor, their ``power`` rows, then the
    ``level_mean`` rows: each level's and each baseline's mean score over seeds, per task."""
    df, _ = one_per_cell(inputs.trials)  # search studies: the protocol's pick per cell is the observation
    y = inputs.y
    factors = varying_factors(df)
    (seed,) = inputs.random_states
    parts = [factor_tests(df, factors, y=y, n_resamples=inputs.n_resamples, random_state=seed)]
    parts += [seeds_needed(df, factor, y=y) for factor in factors]
    parts += [_level_means(df, factor, y, inputs.baselines) for factor in factors]
    return pd.concat(parts, ignore_index=True)


def _level_means(df: pd.DataFrame, factor: str, y: str, baselines: pd.DataFrame | None) -> pd.DataFrame:
    """Return ``level_mean`` rows: per task, each level's mean of per-seed means (other factors averaged)
    with a 95% t interval (``variant = level``), and each baseline's on the same splits (``baseline``)."""
    rows = []
    for task, part in df.groupby(_TASK, sort=True):
        table = per_seed(part, factor, y)
        for level in ordered_levels(table.columns, spec_levels(df.attrs.get("spec") or {}, factor)):
            mean, low, high = mean_ci(table[level].to_numpy(float))
            rows.append(make_row(test=_LEVEL_MEAN, task=task, variant="level", factor=factor, level=level_text(level),
                                 method="mean of per-seed means, t interval", y=y, n=int(table[level].notna().sum()),
                                 estimate=mean, ci_low=low, ci_high=high, confidence=0.95))
        if baselines is None or baselines.empty or y != contract.TEST_SCORE:
            continue
        mine = baselines[baselines[_TASK] == task]
        for name, group in mine.groupby(contract.BASELINE, sort=False):
            values = group.groupby(_SEED)[contract.TEST_SCORE].mean().to_numpy(float)
            mean, low, high = mean_ci(values)
            rows.append(make_row(test=_LEVEL_MEAN, task=task, variant="baseline", factor=factor, level=str(name),
                                 method="classical baseline on the same splits, t interval", y=y,
                                 n=int(np.isfinite(values).sum()), estimate=mean, ci_low=low, ci_high=high,
                                 confidence=0.95))
    return results_frame(rows)


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    df, y = view.data.trials, view.y
    for factor in varying_factors(df):
        doc.heading(2, f"Factor `{factor}`")
        slug = "".join(ch if ch.isalnum() else "_" for ch in factor)
        path = factor_figure(df, factor, view.out / f"factor_{slug}.png", y=y, baselines=view.data.baselines)
        with_baselines = y == contract.TEST_SCORE and not view.data.baselines.empty
        if path:
            doc.image(path, f"Mean {y} per level of {factor} with 95% t CIs over seeds (grey: each seed), per task"
                      + ("; dashed: the classical baselines on the same splits." if with_baselines else "."))
        mine = rows[rows["factor"] == factor]
        means = mine[mine["test"] == _LEVEL_MEAN]
        if not means.empty:
            doc.para("Each level (other factors averaged within each seed)"
                     + (" beside the classical baselines on the same splits" if with_baselines else "")
                     + ": mean over seeds with a 95% t interval.")
            doc.table(pick(means, ["task", "variant", "level", "n", "estimate", "ci_low", "ci_high"]))
        doc.para("Contrasts against the reference level (per-seed means, Holm-corrected over the factor):")
        doc.table(pick(mine[mine["test"] == "contrast"],
                       ["task", "level", "reference", "variant", "n", "estimate", "ci_low", "ci_high", "effect_size",
                        "effect_type", "p_val", "p_perm", "p_adj", "note"]))
        doc.para("Per task: the blocked (repeated-measures) F test, seeds as blocks, the other factors averaged "
                 "within each (seed, level); F = MS_level / MS_(level × seed), df = (k - 1, (k - 1)(b - 1)), "
                 "Holm over tasks. No mixed model is fitted (with few seeds its Wald test does not hold alpha). "
                 "Across tasks: Friedman over per-task means, then Wilcoxon:")
        doc.table(pick(mine[mine["test"].isin(_MODEL_TESTS)],
                       ["test", "variant", "task", "level", "reference", "n", "statistic", "df", "df2", "p_val", "p_adj",
                        "effect_size", "effect_type", "note"]))
        doc.para("Seeds needed for 80% power at alpha = 0.05 to detect the observed effect:")
        doc.table(pick(mine[mine["test"] == "power"],
                       ["task", "level", "reference", "variant", "effect_size", "effect_type", "n", "n_needed",
                        "underpowered", "note"]))


FACTORS = Section("factors", "Evidence", _render, _tests, random_states=1)
"""Per-factor tests (blocked F, contrasts, Friedman/Wilcoxon, power) and their figure."""
