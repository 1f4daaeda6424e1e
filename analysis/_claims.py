"""The seed paper's findings as explicit hypotheses, each tested only when the study can test it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._contrasts import Contrast, compare, level_text, ordered_levels, per_seed, spec_levels
from analysis._correlation import correlation_tests
from analysis._load import factor_columns, otdd_strata
from analysis._resampling import RandomState, adjust_pvalues, as_generator
from analysis._verdicts import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_EVALUATED,
    SUPPORTED,
    across_tasks,
    combine,
    correlation_verdict,
    equivalence_verdict,
    helps_verdict,
    no_help_verdict,
)
from harness import contract

__all__ = ["CLAIMS", "SUMMARY", "claims"]

SUMMARY = "summary"
"""The ``variant`` of a claim's one verdict row (``task == "all"``); its evidence rows name their role."""

CLAIMS: dict[str, str] = {
    "1": "The proxy dataset (embedder.proxy) does not change the score.",
    "2": "Embedder training (embedder.epochs > 0 vs 0) does not improve 2D tasks.",
    "3": "On 1D tasks some embedder training improves the score, and more training does not improve it further.",
    "4": "Lower OTDD after alignment does not reliably predict a better score.",
    "5": "Fine-tuning the body is critical: a trained body beats a frozen one (finetune.freeze).",
    "6": "The embedder need not be fine-tuned after alignment (finetune.freeze = embedder vs none).",
    "7": "A randomly initialised body (body.pretrained = false) matches a pretrained one.",
}
"""Claim id -> the hypothesis in words, as the report states it."""


@dataclass(frozen=True)
class _Setup:
    df: pd.DataFrame
    y: str
    margin: float
    alpha: float
    rho_weak: float
    n_resamples: int
    rng: np.random.Generator


@dataclass(frozen=True)
class _Pending:
    task: str
    role: str  # equivalence | no_help | helps | not_worse
    factor: str
    level: str
    reference: str
    sign: float
    contrast: Contrast | None
    why: str = ""


def _sign(part: pd.DataFrame) -> float:
    if contract.DIRECTION in part.columns:
        values = part[contract.DIRECTION].dropna().astype(str).str.lower()
        if len(values) and values.iloc[0].startswith("min"):
            return -1.0
    return 1.0


def _tasks(s: _Setup, modality: str | None = None) -> list[tuple[str, pd.DataFrame]]:
    data = s.df.dropna(subset=[s.y])
    out = []
    for task, part in data.groupby("task", sort=True):
        if modality is not None:
            mods = part[contract.MODALITY].dropna().astype(str).str.lower()
            if not len(mods) or mods.iloc[0] != modality:
                continue
        out.append((str(task), part))
    return out


def _contrast(s: _Setup, part: pd.DataFrame, factor: str, classify: Callable[[Any], str | None],
              level: str, reference: str) -> Contrast | None:
    groups = part[factor].map(classify)
    table = per_seed(part.assign(_group=groups).dropna(subset=["_group"]), "_group", s.y)
    if level not in table.columns or reference not in table.columns:
        return None
    return compare(table[level], table[reference], margin=s.margin, n_resamples=s.n_resamples, rng=s.rng)


def _pending(s: _Setup, task: str, part: pd.DataFrame, role: str, factor: str, level: Any, reference: Any,
             classify: Callable[[Any], str | None] | None = None) -> _Pending:
    lv, ref = level_text(level), level_text(reference)
    fn = classify or (lambda v: level_text(v) if level_text(v) in (lv, ref) else None)
    c = _contrast(s, part, factor, fn, lv, ref)
    why = "" if c else f"{NOT_ENOUGH_DATA}: a level is missing in this task or has fewer than two seeds"
    return _Pending(task, role, factor, lv, ref, _sign(part), c, why)


def _margin_p(p: _Pending, margin: float) -> float:
    c = p.contrast
    assert c is not None
    if p.role in ("equivalence", "not_worse"):
        return c.p_tost
    # One-sided: improvement (sign * difference) below the margin.
    return c.p_beyond(margin, "less") if p.sign > 0 else c.p_beyond(-margin, "greater")


def _evaluate(cid: str, s: _Setup, pendings: list[_Pending]) -> list[dict[str, Any]]:
    ready = [p for p in pendings if p.contrast is not None]
    p_adj = adjust_pvalues([p.contrast.p_val for p in ready], "holm")  # type: ignore[union-attr]
    pm = [_margin_p(p, s.margin) for p in ready]
    pm_adj = adjust_pvalues(pm, "holm")
    rows: list[dict[str, Any]] = []
    adjusted = {id(p): (a, m, ma) for p, a, m, ma in zip(ready, p_adj, pm, pm_adj)}
    for p in pendings:
        base = {"test": "claim", "claim": cid, "hypothesis": CLAIMS[cid], "task": p.task, "variant": p.role,
                "factor": p.factor, "level": p.level, "reference": p.reference, "y": s.y, "margin": s.margin,
                "family": f"claim {cid}", "correction": "holm", "method": "t on per-seed means"}
        if p.contrast is None:
            rows.append(make_row(**base, verdict=NOT_EVALUATED, note=p.why))
            continue
        c = p.contrast
        a, m, ma = adjusted[id(p)]
        improvement = p.sign * c.estimate
        note = c.note
        if p.role == "equivalence":
            verdict = equivalence_verdict(c.estimate, a, ma, s.margin, s.alpha)
            alternative = "equivalence"
        elif p.role == "not_worse":
            verdict = equivalence_verdict(c.estimate, a, ma, s.margin, s.alpha)
            if verdict == CONTRADICTED and improvement > 0:
                verdict, note = SUPPORTED, f"{note}; the frozen level scored better"
            alternative = "equivalence"
        elif p.role == "no_help":
            verdict = no_help_verdict(improvement, a, ma, s.margin, s.alpha)
            alternative = "less"
        else:
            verdict = helps_verdict(improvement, a, ma, s.margin, s.alpha)
            alternative = "less"
        stats_row = {**c.as_row(), "note": note, "p_adj": a, "p_margin": m, "p_margin_adj": ma,
                     "confidence": 0.95, "alternative": alternative}
        stats_row.pop("variant")  # the claim row's variant names the role; an unpaired design says so in the note
        rows.append(make_row(**base, verdict=verdict, **stats_row))
    return rows


def _summary(cid: str, s: _Setup, rows: list[dict[str, Any]], factor: str,
             per_task: Callable[[list[dict[str, Any]]], str] | None = None) -> dict[str, Any]:
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    rule = per_task or (lambda rs: combine([r["verdict"] for r in rs]))
    verdict, note = across_tasks({t: rule(rs) for t, rs in by_task.items()})
    return make_row(test="claim", claim=cid, hypothesis=CLAIMS[cid], verdict=verdict, task="all", variant=SUMMARY,
                    factor=factor, y=s.y, margin=s.margin, n=len(by_task), family=f"claim {cid}", note=note)


def _not_evaluated(cid: str, s: _Setup, factor: str, reason: str) -> list[dict[str, Any]]:
    return [make_row(test="claim", claim=cid, hypothesis=CLAIMS[cid], verdict=NOT_EVALUATED, task="all",
                     variant=SUMMARY, factor=factor, y=s.y, margin=s.margin, note=reason)]


def _levels(s: _Setup, factor: str) -> list[Any]:
    return ordered_levels(s.df[factor].dropna().unique(), spec_levels(s.df.attrs.get("spec") or {}, factor))


def _claim_1(s: _Setup) -> list[dict[str, Any]]:
    factor = "embedder.proxy"
    if factor not in s.df.columns or len(_levels(s, factor)) < 2:
        return _not_evaluated("1", s, factor, f"the study does not vary {factor}")
    ref, *others = _levels(s, factor)
    pendings = [_pending(s, t, part, "equivalence", factor, lv, ref) for t, part in _tasks(s) for lv in others
                if (part[factor].map(level_text) == level_text(lv)).any()]
    rows = _evaluate("1", s, pendings)
    return [_summary("1", s, rows, factor), *rows]


def _epoch_levels(s: _Setup) -> tuple[str, list[float]] | str:
    factor = "embedder.epochs"
    if factor not in s.df.columns:
        return f"the study does not vary {factor}"
    if contract.MODALITY not in s.df.columns:
        return "the study records no task modality (user attr modality)"
    try:
        levels = sorted({float(v) for v in s.df[factor].dropna()})
    except (TypeError, ValueError):
        return f"{factor} levels are not numbers"
    if 0.0 not in levels or len(levels) < 2:
        return f"{factor} needs level 0 and a positive level"
    return factor, levels


def _claim_2(s: _Setup) -> list[dict[str, Any]]:
    found = _epoch_levels(s)
    if isinstance(found, str):
        return _not_evaluated("2", s, "embedder.epochs", found)
    factor, levels = found
    tasks = _tasks(s, "2d")
    if not tasks:
        return _not_evaluated("2", s, factor, "the study has no 2D task")
    pendings = [_pending(s, t, part, "no_help", factor, lv, 0) for t, part in tasks for lv in levels[1:]
                if (part[factor].astype(float) == lv).any()]
    rows = _evaluate("2", s, pendings)
    return [_summary("2", s, rows, factor), *rows]


def _claim_3_task(rows: list[dict[str, Any]]) -> str:
    helps = [r["verdict"] for r in rows if r["variant"] == "helps" and r["verdict"] != NOT_EVALUATED]
    more = combine([r["verdict"] for r in rows if r["variant"] == "no_help"])
    if not helps or more == NOT_EVALUATED:
        return NOT_EVALUATED
    some = SUPPORTED if SUPPORTED in helps else CONTRADICTED if all(v == CONTRADICTED for v in helps) else INCONCLUSIVE
    if CONTRADICTED in (some, more):
        return CONTRADICTED
    return SUPPORTED if some == SUPPORTED and more == SUPPORTED else INCONCLUSIVE


def _claim_3(s: _Setup) -> list[dict[str, Any]]:
    found = _epoch_levels(s)
    if isinstance(found, str):
        return _not_evaluated("3", s, "embedder.epochs", found)
    factor, levels = found
    if len(levels) < 3:
        return _not_evaluated("3", s, factor, f"{factor} needs level 0 and two positive levels")
    tasks = _tasks(s, "1d")
    if not tasks:
        return _not_evaluated("3", s, factor, "the study has no 1D task")
    some = levels[1]
    pendings = [_pending(s, t, part, "helps", factor, lv, 0) for t, part in tasks for lv in levels[1:]]
    pendings += [_pending(s, t, part, "no_help", factor, lv, some) for t, part in tasks for lv in levels[2:]]
    rows = _evaluate("3", s, pendings)
    return [_summary("3", s, rows, factor, _claim_3_task), *rows]


_CLAIM_OWNED = ("test", "claim", "hypothesis", "verdict", "variant", "y", "family")


def _claim_4(s: _Setup) -> list[dict[str, Any]]:
    if contract.OTDD_AFTER not in s.df.columns or s.df[contract.OTDD_AFTER].notna().sum() < 3:
        return _not_evaluated("4", s, "", "the study records no otdd_after")
    # Orient every task so that higher is better; then "predictive" means a negative rank correlation.
    oriented = pd.concat([part.assign(_better=_sign(part) * part[s.y]) for _, part in _tasks(s)])
    oriented.attrs = dict(s.df.attrs)
    # OTDD to different proxies (or in different bodies' spaces) is not one scale: correlate
    # within each level of such factors, pooling the strata as the pooled row pools tasks.
    oriented, scales = otdd_strata(oriented)
    configs = [c for c in factor_columns(s.df) if c not in scales]
    table = correlation_tests(oriented, x=contract.OTDD_AFTER, y="_better", aggregate="config",
                              n_resamples=s.n_resamples, random_state=s.rng, correction="holm", config_columns=configs)
    rows, by_task = [], {}
    for rec in table.to_dict("records"):
        rec = {k: v for k, v in rec.items() if k not in _CLAIM_OWNED}
        ok = np.isfinite(rec["statistic"])
        verdict = (correlation_verdict(-rec["statistic"], rec["p_adj"], -rec["ci_low"], s.rho_weak, s.alpha)
                   if ok else NOT_EVALUATED)
        rows.append(make_row(**rec, test="claim", claim="4", hypothesis=CLAIMS["4"], verdict=verdict,
                             variant="correlation", y=s.y, family="claim 4"))
        if rec["task"] != "all":
            by_task[rec["task"]] = verdict
    pooled = [r for r in rows if r["task"] == "all" and r["verdict"] != NOT_EVALUATED]
    verdict, note = across_tasks(by_task)
    if pooled:
        verdict = pooled[0]["verdict"]
        if verdict == CONTRADICTED and SUPPORTED in by_task.values():
            verdict, note = INCONCLUSIVE, "pooled correlation predictive but not in every task: " + note
    within = f" within levels of {', '.join(scales)} (OTDD scales differ across them)" if scales else ""
    note = (f"seeds averaged per configuration{within}; predictive = negative Spearman rho; weak below {s.rho_weak}; "
            f"{note}")
    return [make_row(test="claim", claim="4", hypothesis=CLAIMS["4"], verdict=verdict, task="all", variant=SUMMARY,
                     x=contract.OTDD_AFTER, y=s.y, n=len(by_task), family="claim 4", note=note), *rows]


def _tokens(value: Any) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", level_text(value).lower()))


def _claim_5(s: _Setup) -> list[dict[str, Any]]:
    factor = "finetune.freeze"
    if factor not in s.df.columns:
        return _not_evaluated("5", s, factor, f"the study does not vary {factor}")

    def body(v: Any) -> str:
        return "body frozen" if _tokens(v) & {"body", "all"} else "body trained"

    kinds = {body(v) for v in s.df[factor].dropna()}
    if len(kinds) < 2:
        return _not_evaluated("5", s, factor, f"{factor} needs levels that freeze the body and levels that do not")
    pendings = [_pending(s, t, part, "helps", factor, "body trained", "body frozen", body) for t, part in _tasks(s)]
    rows = _evaluate("5", s, pendings)
    return [_summary("5", s, rows, factor), *rows]


def _claim_6(s: _Setup) -> list[dict[str, Any]]:
    factor = "finetune.freeze"
    texts = {level_text(v) for v in s.df[factor].dropna()} if factor in s.df.columns else set()
    if not {"embedder", "none"} <= texts:
        return _not_evaluated("6", s, factor, f"{factor} needs levels 'embedder' and 'none'")
    pendings = [_pending(s, t, part, "not_worse", factor, "embedder", "none") for t, part in _tasks(s)]
    rows = _evaluate("6", s, pendings)
    return [_summary("6", s, rows, factor), *rows]


def _claim_7(s: _Setup) -> list[dict[str, Any]]:
    factor = "body.pretrained"

    def kind(v: Any) -> str | None:
        text = level_text(v).lower()
        return "pretrained" if text in ("true", "1", "yes") else "random" if text in ("false", "0", "no") else None

    kinds = {kind(v) for v in s.df[factor].dropna()} if factor in s.df.columns else set()
    if not {"pretrained", "random"} <= kinds:
        return _not_evaluated("7", s, factor, f"{factor} needs levels true and false")
    pendings = [_pending(s, t, part, "equivalence", factor, "random", "pretrained", kind) for t, part in _tasks(s)]
    rows = _evaluate("7", s, pendings)
    return [_summary("7", s, rows, factor), *rows]


_EVALUATORS: dict[str, Callable[[_Setup], list[dict[str, Any]]]] = {
    "1": _claim_1, "2": _claim_2, "3": _claim_3, "4": _claim_4, "5": _claim_5, "6": _claim_6, "7": _claim_7,
}


def claims(
    df: pd.DataFrame,
    *,
    margin: float = 0.01,
    alpha: float = 0.05,
    y: str = contract.TEST_SCORE,
    rho_weak: float = 0.3,
    n_resamples: int = 9999,
    random_state: RandomState = None,
) -> pd.DataFrame:
    """Return the verdict on each of the seed paper's claims: one ``summary`` row per claim, then its evidence.

    Input: the tidy trials frame of :func:`load_trials` (``task``, ``seed``, factor columns, ``y``;
    ``modality`` for claims 2–3, ``direction`` to orient "better", ``otdd_after`` for claim 4).
    Contrasts compare per-seed means (paired by seed); within each claim, two-sided t p-values and
    margin-test p-values are Holm-corrected over the claim's contrasts. ``margin`` is on the score's
    scale (0.01 = one point of accuracy on [0, 1]). Verdicts (see ``analysis._verdicts``):
    ``supported | contradicted | inconclusive``, or ``not evaluated`` with the reason in ``note``.
    """
    if not margin > 0 or not 0 < alpha < 1:
        raise AnalysisError(f"margin must be > 0 and alpha in (0, 1); got margin={margin}, alpha={alpha}")
    if y not in df.columns or "task" not in df.columns or "seed" not in df.columns:
        raise AnalysisError(f"the trials frame needs columns 'task', 'seed' and {y!r}; it has {list(df.columns)}")
    setup = _Setup(df, y, margin, alpha, rho_weak, n_resamples, as_generator(random_state))
    rows: list[dict[str, Any]] = []
    for evaluate in _EVALUATORS.values():
        rows.extend(evaluate(setup))
    return results_frame(rows)
