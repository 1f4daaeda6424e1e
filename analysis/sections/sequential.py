"""Adaptive seeds: the group-sequential verdicts of the declared hypotheses and the stopping history.

Only for a study created with ``seeds: {start, step, max}`` (its spec records ``adaptive``). The
verdicts of record are these (``test = sequential``): the fixed-n rows of the hypotheses section
test the final data as if its size had been fixed in advance, which looking after each round
does not allow. See :mod:`analysis._sequential` for the procedure.
"""

from __future__ import annotations

import pandas as pd

from analysis._columns import results_frame
from analysis._render import Document
from analysis._sequential import Design, sequential_tests
from analysis.sections._section import ReportView, Section, TestInputs, pick
from harness import contract

__all__ = ["SEQUENTIAL_SECTION"]


def _design(spec: dict) -> Design | None:
    return Design.from_spec(spec) if spec else None


def _tests(inputs: TestInputs) -> pd.DataFrame:
    spec = dict(inputs.trials.attrs.get("spec") or {})
    design = _design(spec)
    if design is None:
        return results_frame([])
    from analysis.sections.hypotheses import settings_for

    settings, _ = settings_for(spec, inputs.margin, inputs.alpha)
    return sequential_tests(inputs.trials, design, [int(s) for s in spec.get("seeds", [])], settings=settings,
                            y=inputs.y, baselines=inputs.baselines)


def _rounds(view: ReportView) -> pd.DataFrame:
    study = view.data.study
    attrs = study.user_attrs if study is not None else {}
    records = [v for k, v in sorted(attrs.items()) if k.startswith(contract.ADAPTIVE_ROUND + "_") and isinstance(v, dict)]
    return pd.DataFrame([{"look": r.get("look", 0) + 1, "seeds opened": ", ".join(map(str, r.get("seeds", []))),
                          "cells": len(r.get("cells", [])),
                          "open after the look": ", ".join(r["open"]) if r.get("open") else
                          ("none" if r.get("open") is not None else "(not yet looked at)")}
                         for r in records])


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    design = _design(dict(view.data.spec or {}))
    assert design is not None
    doc.heading(2, "Adaptive seeds: group-sequential verdicts")
    doc.para(f"This study opened its seeds round by round and looked at its data after "
             f"{', '.join(map(str, design.looks))} seeds ({design.spending} alpha spending, Lan-DeMets; t-scale "
             "boundaries simulated; verdicts frozen at the look that decided them; non-binding futility). The "
             "verdicts above come from this procedure, not from the fixed-n rules. A hypothesis stops asking "
             "for seeds once it is decided or futile; the cells it reads get the next seeds only while some "
             "hypothesis still needs them.")
    summary = rows[rows["variant"] == "summary"]
    doc.table(pick(summary, ["hypothesis", "kind", "verdict", "df", "n", "note"]).rename(
        columns={"df": "decided at look", "n": "seeds at the end"}))
    history = rows[rows["variant"] == "look"]
    if not history.empty:
        doc.para("Each hypothesis at each look (repeated p-values: below alpha means shown; `futile`: it could "
                 "not be decided by the last look):")
        doc.table(pick(history, ["hypothesis", "df", "n", "p_support", "p_contra", "verdict", "note"]).rename(
            columns={"df": "look", "n": "seeds"}))
    rounds = _rounds(view)
    if not rounds.empty:
        doc.para("Rounds recorded in the study:")
        doc.table(rounds)


SEQUENTIAL_SECTION = Section("sequential", "What the study says", _render, _tests)
"""The group-sequential verdicts and stopping history of an adaptive study."""
