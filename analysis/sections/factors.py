"""One subsection per varying factor: contrasts, the blocked F per task, tests across tasks, and seeds needed."""

from __future__ import annotations

import pandas as pd

from analysis._factors import factor_tests
from analysis._figures import factor_figure
from analysis._hypotheses import one_per_cell
from analysis._load import varying_factors
from analysis._power import seeds_needed
from analysis._render import Document
from analysis.sections._section import ReportView, Section, TestInputs, pick

__all__ = ["FACTORS"]

_MODEL_TESTS = ("anova", "friedman", "wilcoxon")


def _tests(inputs: TestInputs) -> pd.DataFrame:
    """Return :func:`analysis.factor_tests` rows of every varying factor, then their ``power`` rows."""
    df, _ = one_per_cell(inputs.trials)  # search studies: the protocol's pick per cell is the observation
    y = inputs.y
    factors = varying_factors(df)
    (seed,) = inputs.random_states
    parts = [factor_tests(df, factors, y=y, n_resamples=inputs.n_resamples, random_state=seed)]
    parts += [seeds_needed(df, factor, y=y) for factor in factors]
    return pd.concat(parts, ignore_index=True)


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    df, y = view.data.trials, view.y
    for factor in varying_factors(df):
        doc.heading(2, f"Factor `{factor}`")
        slug = "".join(ch if ch.isalnum() else "_" for ch in factor)
        path = factor_figure(df, factor, view.out / f"factor_{slug}.png", y=y)
        if path:
            doc.image(path, f"Mean {y} per level of {factor} with 95% t CIs over seeds (grey: each seed), per task.")
        mine = rows[rows["factor"] == factor]
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
