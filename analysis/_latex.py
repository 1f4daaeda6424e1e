"""``tables.tex``: the hypothesis summary and evidence tables as LaTeX (booktabs) for a paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from analysis._render import format_value
from analysis._spec import read_hypotheses

__all__ = ["latex_table", "latex_tables"]

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _escape(text: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def latex_table(frame: pd.DataFrame, caption: str) -> str:
    """Return ``frame`` as a booktabs ``table`` environment (values formatted as in the report)."""
    cols = list(frame.columns)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_escape(caption)}}}",
             r"\begin{tabular}{" + "l" * len(cols) + "}", r"\toprule",
             " & ".join(_escape(str(c)) for c in cols) + r" \\", r"\midrule"]
    for _, row in frame.iterrows():
        lines.append(" & ".join(_escape(format_value(row[c])) for c in cols) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def latex_tables(tests: pd.DataFrame, spec: Mapping[str, Any]) -> str:
    """Return the summary (one row per hypothesis) and evidence tables of ``tests`` (columns ``COLUMNS``)."""
    from analysis.sections.hypotheses import summary_table

    mine = tests[tests["test"] == "hypothesis"]
    parts = ["% orca-ablate tables: needs \\usepackage{booktabs}", ""]
    if len(mine):
        says = {h.id: h.says for h in read_hypotheses(spec)}
        parts.append(latex_table(summary_table(mine, says), "Hypotheses: verdicts"))
        evidence = mine[mine["variant"] != "summary"][["hypothesis", "task", "level", "reference", "n", "estimate",
                                                       "ci_low", "ci_high", "verdict"]]
        parts.append(latex_table(evidence, "Hypotheses: evidence per task"))
    contrasts = tests[tests["test"] == "contrast"][["task", "factor", "level", "reference", "n", "estimate",
                                                    "ci_low", "ci_high", "p_adj"]]
    if len(contrasts):
        parts.append(latex_table(contrasts, "Contrasts against the reference level"))
    return "\n".join(parts)
