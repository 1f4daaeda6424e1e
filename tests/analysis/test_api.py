"""The public surface: every exported name resolves, and every test shares one column set."""

from __future__ import annotations

import pandas as pd
import pytest
from analysis_synthetic import trials_frame

import analysis
from analysis import COLUMNS, AnalysisError, make_row, results_frame


def test_every_name_in_all_resolves() -> None:
    for name in analysis.__all__:
        assert getattr(analysis, name) is not None, name
    assert len(set(analysis.__all__)) == len(analysis.__all__)


def test_analysis_error_is_a_user_error_value_error() -> None:
    assert issubclass(AnalysisError, ValueError)
    assert AnalysisError.user_error is True


def test_make_row_rejects_unknown_columns() -> None:
    with pytest.raises(KeyError, match="pval"):
        make_row(pval=0.5)


def test_results_frame_has_exactly_the_shared_columns() -> None:
    frame = results_frame([make_row(test="x", n=3, p_val=0.5)])
    assert tuple(frame.columns) == COLUMNS
    assert frame.loc[0, "task"] == "" and pd.isna(frame.loc[0, "ci_low"])


def test_all_tests_concatenate_into_one_table() -> None:
    df = trials_frame(tasks=("ecg", "crop", "digits"),
                      factors={"embedder.proxy": ["cifar", "fake"], "embedder.epochs": [0, 5]}, noise=0.01)
    tables = [
        analysis.correlation_tests(df, n_resamples=99, random_state=0),
        analysis.factor_tests(df, "embedder.proxy", n_resamples=99, random_state=0),
        analysis.seeds_needed(df, "embedder.proxy"),
        analysis.hypothesis_tests(df, [analysis.Hypothesis("p", kind="no_change", factor="embedder.proxy",
                                                           level=("fake",), reference="cifar")],
                                  n_resamples=99, random_state=0),
    ]
    for table in tables:
        assert tuple(table.columns) == COLUMNS
    both = pd.concat(tables, ignore_index=True)
    assert tuple(both.columns) == COLUMNS
    assert set(both["test"]) >= {"correlation", "anova", "contrast", "power", "hypothesis"}
