"""orca-ablate's statistics: trials read back from storage, significance tests, reports.

Every test takes the tidy trials frame of :func:`load_trials` and returns a DataFrame whose columns
are exactly :data:`COLUMNS`, so results concatenate into one table. The report is the list of
sections in :data:`analysis.sections.SECTIONS`; its docstring says how to add a test or a section.
"""

from __future__ import annotations

from analysis._columns import COLUMNS, NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._correlation import CORRELATION_METHODS, CorrelationMethod, correlation_tests
from analysis._factors import factor_tests
from analysis._hypotheses import hypothesis_tests, matched_differences, one_per_cell
from analysis._load import StudyData, factor_columns, load_study, load_trials
from analysis._power import rule_power, rule_seeds_needed, seeds_needed
from analysis._report import run_all_tests, write_report
from analysis._resampling import adjust_pvalues
from analysis._rules import KINDS, VERDICTS
from analysis._spec import AnalysisSettings, Hypothesis, read_hypotheses, read_settings

__all__ = [
    "AnalysisError",
    "AnalysisSettings",
    "COLUMNS",
    "CORRELATION_METHODS",
    "CorrelationMethod",
    "Hypothesis",
    "KINDS",
    "NOT_ENOUGH_DATA",
    "StudyData",
    "VERDICTS",
    "adjust_pvalues",
    "correlation_tests",
    "factor_columns",
    "factor_tests",
    "hypothesis_tests",
    "load_study",
    "load_trials",
    "make_row",
    "matched_differences",
    "one_per_cell",
    "read_hypotheses",
    "read_settings",
    "results_frame",
    "rule_power",
    "rule_seeds_needed",
    "run_all_tests",
    "seeds_needed",
    "write_report",
]
