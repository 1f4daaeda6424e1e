"""The report's sections, in report order: each one's tests (rows of ``tests.csv``) and its part of the report.

:func:`analysis.write_report` and :func:`analysis.run_all_tests` walk :data:`SECTIONS`: every
section's ``tests`` get a :class:`TestInputs` and return rows with exactly the columns
:data:`analysis.COLUMNS`; the rows of all sections, concatenated in registry order, are
``tests.csv``. Then each section's ``render`` appends its part to the document under its
``chapter`` (the level-1 heading, written once for consecutive sections of one chapter).

How to add a statistical test or a report section (one new module, one registry line):

1. Create ``analysis/sections/my_test.py``::

       from __future__ import annotations

       import pandas as pd

       from analysis._columns import make_row, results_frame
       from analysis._render import Document
       from analysis.sections._section import ReportView, Section, TestInputs, pick


       def _tests(inputs: TestInputs) -> pd.DataFrame:
           # inputs.trials: the tidy trials frame; inputs.y: the score column;
           # inputs.random_states: one int seed per resampling call (as many as random_states below).
           (seed,) = inputs.random_states
           rows = [make_row(test="my_test", task=task, n=len(part), ...)
                   for task, part in inputs.trials.groupby("task")]
           return results_frame(rows)  # exactly COLUMNS; an unknown column name raises


       def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
           # rows: this section's own rows; view.data: the StudyData; view.out: where figures go.
           doc.heading(2, "My test")
           doc.table(pick(rows, ["task", "n", "statistic", "p_val", "note"]))


       MY_TEST = Section("my_test", "Evidence", _render, _tests, random_states=1)

2. In this file, add ``my_test`` to the ``from analysis.sections import ...`` line and
   ``my_test.MY_TEST`` to :data:`SECTIONS`, where it should appear in the report (within the run of
   sections of its chapter, e.g. after ``factors.FACTORS`` for "Evidence").

Nothing else changes: ``tests.csv`` keeps its one column schema (``analysis/_columns.py``; a new
kind of test is a new value of the ``test`` column, not a new column). A section without tests
(figures or text only) passes no ``tests``. Seeds are handed out from one
``SeedSequence(random_state)`` stream in registry order, so a new section with
``random_states > 0`` leaves every number of the sections before it unchanged and shifts the
resamples (not the exact p-values) of resampling sections after it.

Put the computation in the section module itself; when it should also be a public function of
``analysis``, give it its own private module (``analysis/_my_test.py``) and export it in
``analysis/__init__.py`` (a third file, for the public API only, not for the report).
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis._columns import AnalysisError
from analysis.sections import (baselines, correlation, curves, design, factors, hypotheses, reproducibility,
                               secondary, sequential)
from analysis.sections._section import ReportView, Section, TestInputs, pick

__all__ = ["SECTIONS", "ReportView", "Section", "TestInputs", "check_sections", "pick"]

SECTIONS: list[Section] = [
    hypotheses.HYPOTHESES,
    sequential.SEQUENTIAL_SECTION,
    hypotheses.HYPOTHESIS_EVIDENCE,
    baselines.BASELINES,
    correlation.OTDD_CORRELATION,
    factors.FACTORS,
    secondary.SECONDARY,
    curves.OTDD_CURVES,
    design.DESIGN,
    reproducibility.REPRODUCIBILITY,
]
"""The report's sections in report order; :func:`analysis.write_report` reads it at every call."""


def check_sections(sections: Sequence[Section]) -> list[Section]:
    """Return ``sections`` as a list after checking that names are unique and seed counts non-negative."""
    names = [s.name for s in sections]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AnalysisError(f"report sections need unique names; {repeated} appear more than once in {names}")
    negative = [s.name for s in sections if s.random_states < 0]
    if negative:
        raise AnalysisError(f"sections {negative} ask for a negative number of random states; expected 0 or more")
    return list(sections)
