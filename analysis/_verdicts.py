"""Decision rules that turn contrasts and correlations into claim verdicts, and their aggregation."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "SUPPORTED",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "NOT_EVALUATED",
    "VERDICTS",
    "IN_WORDS",
    "equivalence_verdict",
    "no_help_verdict",
    "helps_verdict",
    "correlation_verdict",
    "combine",
    "across_tasks",
]

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_EVALUATED = "not evaluated"
VERDICTS: tuple[str, ...] = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED)
IN_WORDS: dict[str, str] = {
    SUPPORTED: "the data support it",
    CONTRADICTED: "the data contradict it",
    INCONCLUSIVE: "the data cannot decide it",
    NOT_EVALUATED: "not tested",
}
"""Verdict -> what it says about the claim, in plain words (the report's verdict list)."""


def equivalence_verdict(estimate: float, p_adj: float, p_tost_adj: float, margin: float, alpha: float) -> str:
    """Return the verdict on "the level does not change the score".

    supported: TOST shows |difference| < margin (Holm-adjusted TOST p < alpha);
    contradicted: the difference is significant (adjusted t p < alpha) and larger than the margin;
    inconclusive otherwise.
    """
    if p_tost_adj < alpha:
        return SUPPORTED
    if p_adj < alpha and abs(estimate) > margin:
        return CONTRADICTED
    return INCONCLUSIVE


def no_help_verdict(improvement: float, p_adj: float, p_nonsup_adj: float, margin: float, alpha: float) -> str:
    """Return the verdict on "the level does not improve the score".

    supported: a one-sided t test shows improvement < margin (adjusted p < alpha);
    contradicted: a significant improvement (adjusted two-sided t p < alpha) larger than the margin;
    inconclusive otherwise. ``improvement`` is the difference oriented so that positive is better.
    """
    if p_nonsup_adj < alpha:
        return SUPPORTED
    if p_adj < alpha and improvement > margin:
        return CONTRADICTED
    return INCONCLUSIVE


def helps_verdict(improvement: float, p_adj: float, p_nonsup_adj: float, margin: float, alpha: float) -> str:
    """Return the verdict on "the level improves the score": the mirror of :func:`no_help_verdict`."""
    flipped = no_help_verdict(improvement, p_adj, p_nonsup_adj, margin, alpha)
    return {SUPPORTED: CONTRADICTED, CONTRADICTED: SUPPORTED}.get(flipped, INCONCLUSIVE)


def correlation_verdict(predictive_rho: float, p_adj: float, predictive_ci_high: float, rho_weak: float,
                        alpha: float) -> str:
    """Return the verdict on "lower OTDD does not reliably predict a better score" for one correlation.

    ``predictive_rho`` is the rank correlation oriented so that positive means lower OTDD goes with a
    better score. contradicted: significant (adjusted p < alpha) and predictive; supported: significant
    in the opposite direction, or the CI rules out a predictive correlation of ``rho_weak`` or more;
    inconclusive otherwise.
    """
    if p_adj < alpha and predictive_rho > 0:
        return CONTRADICTED
    if (p_adj < alpha and predictive_rho < 0) or predictive_ci_high < rho_weak:
        return SUPPORTED
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """Return one verdict from several tests that must all hold (one task's contrasts of a claim).

    Any contradiction contradicts; all supported supports; nothing evaluated is not evaluated.
    """
    evaluated = [v for v in verdicts if v != NOT_EVALUATED]
    if not evaluated:
        return NOT_EVALUATED
    if CONTRADICTED in evaluated:
        return CONTRADICTED
    if all(v == SUPPORTED for v in evaluated):
        return SUPPORTED
    return INCONCLUSIVE


def across_tasks(by_task: dict[str, str]) -> tuple[str, str]:
    """Return ``(verdict, note)`` for a claim from per-task verdicts.

    supported when every evaluated task supports it, contradicted when at least one task contradicts
    it and none supports it, inconclusive otherwise (including mixed evidence); the note lists tasks.
    """
    evaluated = {t: v for t, v in by_task.items() if v != NOT_EVALUATED}
    note = "; ".join(f"{t}: {v}" for t, v in by_task.items())
    if not evaluated:
        return NOT_EVALUATED, note
    values = set(evaluated.values())
    if values == {SUPPORTED}:
        return SUPPORTED, note
    if CONTRADICTED in values and SUPPORTED not in values:
        return CONTRADICTED, note
    if {SUPPORTED, CONTRADICTED} <= values:
        return INCONCLUSIVE, "mixed across tasks: " + note
    return INCONCLUSIVE, note
