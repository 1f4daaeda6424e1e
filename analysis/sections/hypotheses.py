"""The hypotheses the spec declares: the answer first (one table), then the evidence test by test."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from analysis._hypotheses import SUMMARY, hypothesis_tests
from analysis._render import Document, format_value
from analysis._rules import NOT_EVALUATED
from analysis._spec import AnalysisSettings, read_hypotheses, read_settings
from analysis.sections._section import ReportView, Section, TestInputs, pick

__all__ = ["HYPOTHESES", "HYPOTHESIS_EVIDENCE", "RULES_TEXT", "settings_for", "summary_table"]

_NAME = "hypotheses"

RULES_TEXT = (
    "Differences D = level - reference are oriented so that positive is better (minimised errors: "
    "per-seed log(reference / level)); m is the margin; 'shown' means a one-sided t bound at alpha on "
    "per-seed paired differences over matched blocks (task, seed, other factors). no_change: supported when "
    "TOST shows |D| < m, contradicted when the (1 - alpha) CI lies wholly beyond +m or -m. no_gain: supported "
    "when D < m is shown, contradicted when D > m is shown. not_worse: D > -m shown / D < -m shown. helps: "
    "D > m shown / D < m shown. predicts / no_prediction: the helps / no_gain rules on the configuration-level "
    "Spearman correlation (Fisher z), m = rho_weak. Across tasks, across: all supports only when every "
    "evaluated task does (intersection-union) and contradicts when a task does after Holm; across: k uses the "
    "Bonferroni partial-conjunction p (n - k + 1) p_(k). Each hypothesis is its own family. Zero-variance "
    "differences, constant or non-finite scores and fewer than 3 seeds are not evaluated."
)


def settings_for(spec: dict, margin: float | None, alpha: float | None) -> tuple[AnalysisSettings, str]:
    """Return the settings of this report and why its verdicts are exploratory ("" when they are not)."""
    recorded = read_settings(spec)
    used = replace(recorded, margin=recorded.margin if margin is None else float(margin),
                   alpha=recorded.alpha if alpha is None else float(alpha))
    changed = [f"{name} {getattr(used, name):g} (recorded: {'default' if getattr(recorded, name) is None else f'{getattr(recorded, name):g}'})"
               for name in ("margin", "alpha") if getattr(used, name) != getattr(recorded, name)]
    return used, ("exploratory: " + ", ".join(changed) + " given after the study was created") if changed else ""


def _tests(inputs: TestInputs) -> pd.DataFrame:
    (seed,) = inputs.random_states
    spec = inputs.trials.attrs.get("spec") or {}
    settings, exploratory = settings_for(spec, inputs.margin, inputs.alpha)
    return hypothesis_tests(inputs.trials, settings=settings, y=inputs.y, exploratory=exploratory,
                            n_resamples=inputs.n_resamples, random_state=seed, baselines=inputs.baselines)


def _interval(row: pd.Series, with_reference: bool = False) -> str:
    if not math.isfinite(row["estimate"]):
        return ""
    ci = (f" [{format_value(row['ci_low'])}, {format_value(row['ci_high'])}]"
          if math.isfinite(row["ci_low"]) else "")
    label = f"{row['task']} {row['level']} vs {row['reference']}" if with_reference else str(row["task"])
    return f"{label}: {format_value(row['estimate'])}{ci}"


def summary_table(rows: pd.DataFrame, says: dict[str, str]) -> pd.DataFrame:
    """Return the lead table: per hypothesis its verdict, difference [CI] per task, seeds and seeds needed."""
    out = []
    for row in rows[rows["variant"] == SUMMARY].itertuples():
        evidence = rows[(rows["hypothesis"] == row.hypothesis) & (rows["variant"].isin(["level", "config",
                                                                                        "pooled within tasks"]))]
        levels = evidence[evidence["variant"] == "level"]
        out.append({
            "hypothesis": row.hypothesis, "says": says.get(row.hypothesis, ""), "verdict": row.verdict,
            "difference [CI]": "; ".join(filter(None, (_interval(r, levels["task"].duplicated().any())
                                                       for _, r in levels.iterrows())))
            if len(levels) else "; ".join(f"{r['task']}: rho {format_value(r['statistic'])}"
                                          for _, r in evidence.iterrows() if math.isfinite(r["statistic"])),
            "seeds": format_value(levels["n"].min()) if len(levels) else "",
            "seeds needed (80% power at D = 0; 2m for helps)":
                format_value(levels["n_needed"].max()) if len(levels) and levels["n_needed"].notna().any() else "",
            "exploratory": "yes" if row.exploratory else "",
        })
    return pd.DataFrame(out)


def _against_baselines(doc: Document, view: ReportView) -> None:
    """One line per task: ORCA's best configuration against the best baseline (the baselines section's rows)."""
    rows = view.rows.get("baselines")
    best = rows[rows["variant"] == "best-vs-best"] if rows is not None and not rows.empty else None
    if best is None or best.empty:
        return
    doc.para("Against the classical baselines on the same splits (best configuration vs best baseline, paired "
             "by seed; positive: ORCA better):")
    doc.bullets([f"`{r.task}`: {r.note}: {format_value(r.estimate)} [{format_value(r.ci_low)}, "
                 f"{format_value(r.ci_high)}], {r.level} vs {r.reference}, {r.n} seeds" for r in best.itertuples()])


def _verdicts(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    _answer(doc, view, rows)
    _against_baselines(doc, view)


def _answer(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    spec = view.data.spec or {}
    declared = read_hypotheses(spec)
    settings, exploratory = settings_for(spec, view.margin, view.alpha)
    if not declared:
        doc.para("The spec declares no hypotheses: below, every level is compared with its factor's first level "
                 f"(matched per-seed differences, (1 - alpha) CIs, alpha = {settings.alpha:g}); no verdicts.")
        doc.table(pick(rows, ["task", "factor", "level", "reference", "n", "estimate", "ci_low", "ci_high", "note"]))
        return
    summary = rows[rows["variant"] == SUMMARY]
    margin = summary["margin"].dropna()
    doc.para(f"Hypotheses declared in the spec, tested at alpha = {settings.alpha:g} with margin "
             f"{format_value(margin.iloc[0]) if len(margin) else settings.margin} "
             f"(rho_weak {settings.rho_weak:g} for correlations). " + (exploratory + ". " if exploratory else ""))
    says = {h.id: h.says for h in declared}
    table = summary_table(rows, says)
    sequential = view.rows.get("sequential")
    if sequential is not None and not sequential.empty:  # adaptive seeds: the group-sequential verdicts
        seq = sequential[sequential["variant"] == SUMMARY].set_index("hypothesis")
        fixed_only = seq["kind"].isin(["predicts", "no_prediction"])
        table["verdict"] = [table.loc[i, "verdict"] if h not in seq.index or fixed_only.get(h, False)
                            else seq.loc[h, "verdict"] for i, h in zip(table.index, table["hypothesis"])]
        table["stopping"] = [str(seq.loc[h, "note"]).split(";")[0] if h in seq.index else "" for h in table["hypothesis"]]
        doc.para("Seeds were adaptive: the verdicts are those of the group-sequential procedure (see "
                 "\"Adaptive seeds\" below); differences and CIs describe the final data.")
    testable = table[table["verdict"] != NOT_EVALUATED]
    doc.table(testable)
    untestable = summary[summary["verdict"] == NOT_EVALUATED]
    if len(untestable):
        doc.bullets([f"`{r.hypothesis}`: not evaluated ({r.note})" for r in untestable.itertuples()])
    doc.para("Rules. " + RULES_TEXT)


def _evidence(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    mine = view.rows[_NAME]
    doc.heading(2, "Hypotheses, test by test")
    doc.table(pick(mine[mine["variant"] != SUMMARY],
                   ["hypothesis", "task", "variant", "level", "reference", "n", "estimate", "ci_low", "ci_high",
                    "statistic", "p_val", "p_support", "p_contra", "verdict", "n_needed", "note"]))


HYPOTHESES = Section(_NAME, "What the study says", _verdicts, _tests, random_states=1)
"""The declared hypotheses' tests, and the lead table of their verdicts."""
HYPOTHESIS_EVIDENCE = Section("hypothesis_evidence", "Evidence", _evidence)
"""The hypotheses' evidence rows (computed by :data:`HYPOTHESES`) as one table."""
