"""What a report section is: its tests (rows of ``COLUMNS``) and its part of the document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis._load import StudyData
from analysis._render import Document

__all__ = ["ReportView", "Section", "TestInputs", "pick"]


@dataclass(frozen=True)
class TestInputs:
    """What a section's tests see.

    Attributes:
        trials: the tidy trials frame of :func:`analysis.load_trials` (one row per kept trial;
            ``attrs["factors"]`` and ``attrs["spec"]`` set).
        y: the score column to analyse (``test_score`` unless the spec names another metric).
        margin: the margin given for this report (None: the spec's ``analysis.margin`` or the metric's default).
        n_resamples: bootstrap and permutation resamples.
        random_states: ``(Section.random_states,)`` integer seeds, one per resampling call; they
            come from one ``numpy.random.SeedSequence(random_state)`` stream, in registry order.
    """

    __test__ = False  # not a pytest class, despite the name

    trials: pd.DataFrame
    y: str
    margin: float | None
    n_resamples: int
    random_states: tuple[int, ...]
    alpha: float | None = None
    """The alpha given for this report (None: the spec's ``analysis.alpha``, default 0.05)."""
    baselines: pd.DataFrame | None = None
    """``StudyData.baselines``: one row per COMPLETE classical-baseline trial (None or empty: none)."""


@dataclass(frozen=True)
class ReportView:
    """What a section's renderer sees, beyond its own rows.

    Attributes:
        data: the study as read back from storage (trials, summary, curves, failures, spec).
        rows: section name -> that section's rows (columns ``COLUMNS``; empty for a section without tests).
        tests: every section's rows concatenated, as written to ``tests.csv``.
        out: the report directory; figures are written here (``out / "name.png"``).
        y, margin, n_resamples, random_state, alpha: the report's settings (margin / alpha None: the spec's).
    """

    data: StudyData
    rows: Mapping[str, pd.DataFrame]
    tests: pd.DataFrame
    out: Path
    y: str
    margin: float | None
    n_resamples: int
    random_state: int
    alpha: float | None = None


Tests = Callable[[TestInputs], pd.DataFrame]
"""``TestInputs`` -> rows with exactly the columns ``COLUMNS`` (build them with ``make_row``/``results_frame``)."""
Render = Callable[[Document, ReportView, pd.DataFrame], None]
"""``(document, view, the section's own rows)`` -> None: append headings (level 2 and below), text, tables, figures."""


@dataclass(frozen=True)
class Section:
    """One part of the report: optional tests whose rows go to ``tests.csv``, and how it renders.

    Attributes:
        name: a unique id (``snake_case``): the key of its rows in :attr:`ReportView.rows`.
        chapter: the level-1 heading it sits under; consecutive sections with the same chapter share one.
        render: appends the section to the document (see :data:`Render`).
        tests: computes its rows from :class:`TestInputs`; None for a section that only shows data.
        random_states: how many seeds its tests draw (``len(TestInputs.random_states)``); 0 without resampling.
    """

    name: str
    chapter: str
    render: Render
    tests: Tests | None = None
    random_states: int = 0


def pick(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Return the ``columns`` of ``frame`` that it has, in that order, with a fresh index (a report table)."""
    return frame[[c for c in columns if c in frame.columns]].reset_index(drop=True)
