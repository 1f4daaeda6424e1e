"""The seed paper's claims: their verdicts in words (first chapter), then the evidence test by test."""

from __future__ import annotations

import pandas as pd

from analysis._claims import SUMMARY, claims
from analysis._render import Document
from analysis._verdicts import IN_WORDS
from analysis.sections._section import ReportView, Section, TestInputs, pick

__all__ = ["CLAIM_EVIDENCE", "CLAIM_VERDICTS"]

_NAME = "claims"


def _tests(inputs: TestInputs) -> pd.DataFrame:
    """Return :func:`analysis.claims` rows: one ``summary`` row per claim, then its evidence."""
    (seed,) = inputs.random_states
    return claims(inputs.trials, margin=inputs.margin, y=inputs.y, n_resamples=inputs.n_resamples, random_state=seed)


def _verdicts(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    doc.para(f"Each claim of García-de-Herreros et al. (2024) is a hypothesis tested on this study's trials. "
             f"Differences compare per-seed means (paired by seed), with Holm correction within each claim; "
             f"'no change' claims need an equivalence test within ±{view.margin:g} of the score.")
    items = []
    for row in rows[rows["variant"] == SUMMARY].itertuples():
        words = IN_WORDS.get(row.verdict, row.verdict)
        items.append(f"**Claim {row.claim} — {row.verdict}.** {row.hypothesis} In words: {words}"
                     + (f" ({row.note})." if row.note else "."))
    doc.bullets(items)


def _evidence(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    claim_rows = view.rows[_NAME]
    doc.heading(2, "Claims, test by test")
    doc.table(pick(claim_rows[claim_rows["variant"] != SUMMARY],
                   ["claim", "task", "variant", "level", "reference", "n", "estimate", "ci_low", "ci_high",
                    "statistic", "p_adj", "p_margin_adj", "verdict", "note"]))


CLAIM_VERDICTS = Section(_NAME, "What the study says about the paper's claims", _verdicts, _tests, random_states=1)
"""The claims' tests, and their verdicts in plain words."""
CLAIM_EVIDENCE = Section("claim_evidence", "Evidence", _evidence)
"""The claims' evidence rows (computed by :data:`CLAIM_VERDICTS`) as one table."""
