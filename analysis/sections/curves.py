"""OTDD during embedder training: the recorded curves, drawn per task (no tests)."""

from __future__ import annotations

import pandas as pd

from analysis._columns import NOT_ENOUGH_DATA
from analysis._figures import curves_figure
from analysis._render import Document
from analysis.sections._section import ReportView, Section

__all__ = ["OTDD_CURVES"]


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    doc.heading(2, "OTDD during embedder training")
    path = curves_figure(view.data.curves, view.out / "otdd_curves.png")
    if path:
        doc.image(path, "Mean OTDD per alignment epoch (band: ±1 SD over trials), per task.")
    else:
        doc.para(f"No OTDD curves were recorded ({NOT_ENOUGH_DATA}).")


OTDD_CURVES = Section("otdd_curves", "Evidence", _render)
"""The mean OTDD curve per alignment epoch, per task."""
