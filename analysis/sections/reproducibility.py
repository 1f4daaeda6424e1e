"""How to reproduce the report: its random state, resamples, margin, row count and library versions."""

from __future__ import annotations

from importlib import metadata

import pandas as pd

from analysis._render import Document
from analysis.sections._section import ReportView, Section

__all__ = ["REPRODUCIBILITY"]

_LIBRARIES = ("optuna", "numpy", "scipy", "statsmodels", "pandas", "matplotlib")


def _versions() -> str:
    found = []
    for name in _LIBRARIES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def _settings_line(view: ReportView) -> str:
    from analysis.sections.hypotheses import settings_for

    used, exploratory = settings_for(view.data.spec or {}, view.margin, view.alpha)
    margin = "the metric's default" if used.margin is None else f"{used.margin:g}"
    return (f"margin: {margin}; alpha: {used.alpha:g}; rho_weak: {used.rho_weak:g}"
            + (f" ({exploratory})" if exploratory else " (as recorded in the spec)"))


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    doc.bullets([f"random_state: {view.random_state} (every bootstrap and permutation is seeded from it)",
                 f"n_resamples: {view.n_resamples}", _settings_line(view),
                 f"every test row: `tests.csv` ({len(view.tests)} rows)", f"versions: {_versions()}"])


REPRODUCIBILITY = Section("reproducibility", "Reproducibility", _render)
"""The settings and versions behind every number of the report."""
