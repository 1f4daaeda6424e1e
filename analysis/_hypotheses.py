"""Verdicts on the hypotheses a spec declares: matched contrasts per task, then the across-task rule.

Input everywhere: the tidy trials frame of :func:`analysis.load_trials` (``task``, ``seed``,
factor columns, the score ``y``; ``modality`` for ``tasks: 1d | 2d``, ``direction`` to orient
"better", ``val_score`` to pick one trial per cell of a search study, ``x`` for predicts).
The rules are those of :mod:`analysis._rules`; each hypothesis is its own family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._contrasts import level_text, ordered_levels, spec_levels
from analysis._correlation import correlation_tests
from analysis._load import factor_columns, otdd_strata
from analysis._power import rule_seeds_needed
from analysis._resampling import RandomState, as_generator
from analysis._rules import (
    INCONCLUSIVE,
    NOT_EVALUATED,
    Shown,
    across_all,
    across_k,
    all_of,
    correlation_shown,
    degenerate_note,
    levels_some,
    min_exact_p,
    paired_stats,
    shown,
    verdict_of,
)
from analysis._spec import AnalysisSettings, Hypothesis, read_hypotheses
from harness import contract

__all__ = ["BEST_BASELINE", "HYPOTHESIS", "SUMMARY", "Scale", "baseline_per_seed", "hypothesis_tests",
           "matched_differences", "matched_per_seed", "one_per_cell", "score_scale", "task_list"]

HYPOTHESIS = "hypothesis"
"""The ``test`` of every hypothesis row."""
SUMMARY = "summary"
"""The ``variant`` of a hypothesis's one verdict row (``task == "all"``)."""

_LOG_RATIO_MARGIN = math.log(1.05)


@dataclass(frozen=True)
class Scale:
    """How per-seed differences are formed: ``difference`` (sign (a - b)) or ``log ratio`` (log(b / a))."""

    name: str
    sign: float
    margin: float


def score_scale(df: pd.DataFrame, margin: float | None) -> Scale:
    """Return the difference scale of the frame's score: maximised -> difference, default margin 0.01;
    minimised errors (``direction`` minimize) -> log(reference / level), default margin log 1.05."""
    minimised = False
    if contract.DIRECTION in df.columns:
        values = df[contract.DIRECTION].dropna().astype(str).str.lower()
        minimised = bool(len(values)) and values.iloc[0].startswith("min")
    if minimised:
        return Scale("log ratio", -1.0, _LOG_RATIO_MARGIN if margin is None else margin)
    return Scale("difference", 1.0, 0.01 if margin is None else margin)


def one_per_cell(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Return one trial per cell (task, seed, factor levels): the best ``val_score``, as the protocol picks.

    The note says how many search trials were kept out of the tests ("" when none were).
    """
    keys = ["task", "seed", *[c for c in factor_columns(df) if c in df.columns]]
    if not df.duplicated(keys).any() or contract.VAL_SCORE not in df.columns:
        return df, ""
    sign = score_scale(df, None).sign
    order = df.assign(_rank=sign * df[contract.VAL_SCORE]).sort_values("_rank", ascending=False, kind="stable")
    kept = order.drop_duplicates(keys).drop(columns="_rank").sort_index()
    kept.attrs = dict(df.attrs)
    return kept, (f"{len(df) - len(kept)} search trial(s) kept out of the tests: per cell, the trial with the "
                  f"best {contract.VAL_SCORE} is the observation")


def _check_scores(df: pd.DataFrame, y: str) -> None:
    if y not in df.columns:
        raise AnalysisError(f"the trials frame has no score column {y!r}; it has {list(df.columns)}")
    if not pd.api.types.is_numeric_dtype(df[y]):
        bad = df[y][pd.to_numeric(df[y], errors="coerce").isna() & df[y].notna()].head(3).tolist()
        raise AnalysisError(f"score column {y!r} holds text (e.g. {bad}); expected numbers")


def matched_differences(part: pd.DataFrame, factor: str, level: tuple[str, ...], reference: tuple[str, ...],
                        y: str, scale: Scale) -> tuple[np.ndarray, str]:
    """Return per-seed oriented differences ``(n_seeds,)`` of ``level`` vs ``reference`` over matched blocks.

    A block is (seed, levels of the other factors) of one task; only blocks where both sides exist
    are compared (then averaged per seed), and the note counts the blocks dropped.
    """
    per_seed, note = matched_per_seed(part, factor, level, reference, y, scale)
    return per_seed.to_numpy(float), note


def matched_per_seed(part: pd.DataFrame, factor: str, level: tuple[str, ...], reference: tuple[str, ...],
                     y: str, scale: Scale) -> tuple[pd.Series, str]:
    """Return :func:`matched_differences` as a Series indexed by seed (what a sequential look slices)."""
    others = [c for c in factor_columns(part) if c in part.columns and c != factor]
    text = part[factor].map(level_text)
    side = np.where(text.isin(level), "level", np.where(text.isin(reference), "reference", None))
    data = part.assign(_side=side).dropna(subset=["_side"])
    n_nan = int(data[y].isna().sum())
    data = data.dropna(subset=[y])
    keys = ["seed", *others]
    blocks = data.groupby([*keys, "_side"], dropna=False, observed=True)[y].mean().unstack("_side")
    if "level" not in blocks or "reference" not in blocks:
        return pd.Series(dtype=float), f"{NOT_ENOUGH_DATA}: a side has no trials in this task"
    both = blocks.dropna(subset=["level", "reference"])
    a, b = both["level"].to_numpy(float), both["reference"].to_numpy(float)
    notes = []
    if scale.name == "log ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(b / a)
        if np.any(~(a > 0) | ~(b > 0)):
            notes.append("a non-positive error: the log ratio is undefined")
            d = np.where((a > 0) & (b > 0), d, np.nan)
    else:
        d = scale.sign * (a - b)
    dropped = len(blocks) - len(both)
    if dropped:
        notes.append(f"{dropped} of {len(blocks)} block(s) (seed × other factors) lack a side and were dropped")
    if n_nan:
        notes.append(f"{n_nan} trial(s) with a missing score left out")
    per_seed = pd.Series(d, index=both.index.get_level_values("seed")).groupby(level=0).mean()
    return per_seed, "; ".join(notes)


def task_list(df: pd.DataFrame, h: Hypothesis) -> tuple[list[str], str]:
    """Return the tasks of ``df`` a hypothesis's ``tasks:`` selects, and why none when it selects none."""
    present = sorted(map(str, df["task"].dropna().unique()))
    if isinstance(h.tasks, tuple):
        return [t for t in h.tasks if t in present], ""
    if h.tasks == "all":
        return present, ""
    if contract.MODALITY not in df.columns:
        return [], f"tasks: {h.tasks} needs the task modality, which the study does not record"
    mods = df.groupby("task")[contract.MODALITY].first().astype(str).str.lower()
    return [t for t in present if mods.get(t) == h.tasks], ""


@dataclass(frozen=True)
class _Context:
    df: pd.DataFrame
    y: str
    scale: Scale
    settings: AnalysisSettings
    exploratory: str
    n_resamples: int
    rng: np.random.Generator
    baselines: pd.DataFrame | None = None


BEST_BASELINE = "best_baseline"
"""``reference: best_baseline``: the level must show it against every baseline of the task (intersection-union)."""


def baseline_differences(part: pd.DataFrame, factor: str, level: tuple[str, ...], baseline: pd.DataFrame, y: str,
                         scale: Scale) -> tuple[np.ndarray, str]:
    """Return per-seed oriented differences ``(n_seeds,)`` of ``level`` (averaged over the other factors) vs a baseline.

    ``baseline``: one baseline's rows of one task (``StudyData.baselines``); seeds without both sides are dropped.
    """
    per_seed, note = baseline_per_seed(part, factor, level, baseline, y, scale)
    return per_seed.to_numpy(float), note


def baseline_per_seed(part: pd.DataFrame, factor: str, level: tuple[str, ...], baseline: pd.DataFrame, y: str,
                      scale: Scale) -> tuple[pd.Series, str]:
    """Return :func:`baseline_differences` as a Series indexed by seed."""
    mine = part[part[factor].map(level_text).isin(level)].dropna(subset=[y]).groupby("seed")[y].mean()
    theirs = baseline.dropna(subset=[contract.TEST_SCORE]).groupby("seed")[contract.TEST_SCORE].mean()
    both = pd.concat([mine.rename("level"), theirs.rename("reference")], axis=1, join="inner")
    if both.empty:
        return pd.Series(dtype=float), f"{NOT_ENOUGH_DATA}: no seed has both the level and the baseline"
    a, b = both["level"].to_numpy(float), both["reference"].to_numpy(float)
    if scale.name == "log ratio":
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where((a > 0) & (b > 0), np.log(b / a), np.nan)
    else:
        d = scale.sign * (a - b)
    dropped = len(set(mine.index) | set(theirs.index)) - len(both)
    return pd.Series(d, index=both.index), (f"{dropped} seed(s) without both sides dropped" if dropped else "")


def _level_row(h: Hypothesis, c: _Context, task: str, level: str, reference: Any, s: Any, p: Shown, bad: str,
               note: str, method: str, **extra: Any) -> dict[str, Any]:
    """Return the row of one level of a contrast hypothesis on one task (``s``: its PairedStats)."""
    lo, hi = s.ci(c.settings.alpha)
    return make_row(**_base(
        h, c, task=task, variant="level", factor=h.factor, level=level, reference=reference, method=method,
        n=int(s.n), estimate=float(s.estimate) if s.n else None, ci_low=float(lo) if not bad else None,
        ci_high=float(hi) if not bad else None, df=float(s.df) if s.n else None, p_support=float(p.support),
        p_contra=float(p.contra), verdict=str(verdict_of(p, c.settings.alpha)),
        note="; ".join(filter(None, [bad if bad != note else "", note])), **extra))


def _against_baselines(h: Hypothesis, c: _Context, part: pd.DataFrame, task: str, level: str,
                       rows: list[dict[str, Any]]) -> Shown:
    """Return the combined p of ``level`` against every baseline of ``task`` (intersection-union); add rows."""
    m = c.scale.margin
    pool = c.baselines if c.baselines is not None else pd.DataFrame()
    mine = pool[pool["task"].astype(str) == task] if not pool.empty else pool
    if mine.empty:
        rows.append(make_row(**_base(h, c, task=task, variant="level", factor=h.factor, level=level,
                                     reference=BEST_BASELINE, verdict=NOT_EVALUATED,
                                     note="the study ran no baseline on this task (spec baselines:)")))
        return Shown(np.nan, np.nan)
    per_baseline = []
    for name, group in mine.groupby(contract.BASELINE, sort=False):
        d, note = baseline_differences(part, h.factor, h.members(level), group, c.y, c.scale)
        bad = degenerate_note(d) if not note.startswith(NOT_ENOUGH_DATA) else note
        s = paired_stats(d)
        p = shown(h.kind, s, m) if not bad else Shown(np.nan, np.nan)
        per_baseline.append(p)
        rows.append(_level_row(h, c, task, level, f"baseline {name}", s, p, bad, note,
                               f"one-sided t bounds on per-seed {c.scale.name}s against the baseline"))
    return across_all(Shown(np.array([float(p.support) for p in per_baseline]),
                            np.array([float(p.contra) for p in per_baseline])))


def _combine_tasks(h: Hypothesis, per_task: Shown) -> tuple[Shown, str]:
    if h.across == "all":
        return across_all(per_task), "across tasks: every task must support (intersection-union); Holm for contradiction"
    k = int(h.across)
    return across_k(per_task, k), f"across tasks: at least {k} must show it (Bonferroni partial conjunction)"


def _base(h: Hypothesis, c: _Context, **values: Any) -> dict[str, Any]:
    return {"test": HYPOTHESIS, "hypothesis": h.id, "kind": h.kind or "all_of", "y": c.y,
            "margin": c.settings.rho_weak if h.kind in ("predicts", "no_prediction") else c.scale.margin,
            "family": f"hypothesis {h.id}", "confidence": 1 - c.settings.alpha,
            "exploratory": c.exploratory, **values}


def _contrast(h: Hypothesis, c: _Context) -> tuple[Shown, list[dict[str, Any]]]:
    alpha, m = c.settings.alpha, c.scale.margin
    if h.factor not in c.df.columns:
        row = make_row(**_base(h, c, task="all", variant=SUMMARY, factor=h.factor, verdict=NOT_EVALUATED,
                                note=f"the study does not vary {h.factor}"))
        return Shown(np.nan, np.nan), [row]
    tasks, why = task_list(c.df, h)
    reference = h.members(h.reference) if h.reference != BEST_BASELINE else ()
    rows: list[dict[str, Any]] = []
    task_p: list[Shown] = []
    for task in tasks:
        part = c.df[c.df["task"].astype(str) == task]
        level_p = []
        for level in h.level:
            if h.reference == BEST_BASELINE:
                level_p.append(_against_baselines(h, c, part, task, level, rows))
                continue
            d, note = matched_differences(part, h.factor, h.members(level), reference, c.y, c.scale)
            bad = degenerate_note(d) if not note.startswith(NOT_ENOUGH_DATA) else note
            s = paired_stats(d)
            p = shown(h.kind, s, m) if not bad else Shown(np.nan, np.nan)
            level_p.append(p)
            sd = float(s.se * math.sqrt(s.n)) if s.n > 1 else math.nan
            needed = rule_seeds_needed(h.kind, sd, m, alpha) if not bad else math.nan
            rows.append(_level_row(h, c, task, level, h.reference, s, p, bad, note,
                                   f"one-sided t bounds on per-seed {c.scale.name}s (matched blocks)", power=0.8,
                                   n_needed=needed if math.isfinite(needed) else None,
                                   underpowered=bool(s.n < needed) if math.isfinite(needed) else None))
        stacked = Shown(np.array([float(p.support) for p in level_p]), np.array([float(p.contra) for p in level_p]))
        combined = levels_some(stacked) if h.levels == "some" else across_all(stacked)
        task_p.append(combined)
        if len(h.level) > 1:
            rows.append(make_row(**_base(h, c, task=task, variant="task", factor=h.factor, level=", ".join(h.level),
                                         reference=h.reference, p_support=float(combined.support),
                                         p_contra=float(combined.contra), n=len(h.level),
                                         verdict=str(verdict_of(combined, alpha)),
                                         note=f"levels: {h.levels} ({'Holm over levels' if h.levels == 'some' else 'every level must show it'})")))
    if not task_p:
        return Shown(np.nan, np.nan), [make_row(**_base(h, c, task="all", variant=SUMMARY, factor=h.factor,
                                                         verdict=NOT_EVALUATED,
                                                         note=why or f"the study has no task matching tasks: {h.tasks}"))]
    per_task = Shown(np.array([float(p.support) for p in task_p]), np.array([float(p.contra) for p in task_p]))
    total, rule = _combine_tasks(h, per_task)
    single = [r for r in rows if r["variant"] == "level"]
    one = single[0] if len(single) == 1 else {}
    summary = make_row(**_base(h, c, task="all", variant=SUMMARY, factor=h.factor, level=", ".join(h.level),
                               reference=h.reference, n=len(task_p), p_support=float(total.support),
                               p_contra=float(total.contra), verdict=str(verdict_of(total, alpha)),
                               estimate=one.get("estimate"), ci_low=one.get("ci_low"), ci_high=one.get("ci_high"),
                               note=rule))
    return total, [summary, *rows]


def _correlation(h: Hypothesis, c: _Context) -> tuple[Shown, list[dict[str, Any]]]:
    alpha, weak = c.settings.alpha, c.settings.rho_weak
    x = h.x
    if x not in c.df.columns or c.df[x].notna().sum() < 3:
        return Shown(np.nan, np.nan), [make_row(**_base(h, c, task="all", variant=SUMMARY, x=x, verdict=NOT_EVALUATED,
                                                         note=f"the study records no {x}"))]
    tasks, why = task_list(c.df, h)
    data = c.df[c.df["task"].astype(str).isin(tasks)]
    # Oriented so that a positive rho means "x predicts a better score".
    x_sign = -1.0 if h.better == "lower" else 1.0
    data = data.assign(_x=x_sign * data[x], _better=c.scale.sign * data[c.y])
    data.attrs = dict(c.df.attrs)
    data, scales = otdd_strata(data) if x in (contract.OTDD_AFTER, contract.OTDD_BEFORE) else (data, [])
    configs = [col for col in factor_columns(c.df) if col not in scales]
    table = correlation_tests(data, x="_x", y="_better", aggregate="config", n_resamples=c.n_resamples,
                              random_state=c.rng, correction="holm", config_columns=configs)
    rows, task_p, pooled = [], [], Shown(np.nan, np.nan)
    n_by_task = {}
    for rec in table.to_dict("records"):
        n = int(rec["n"]) if pd.notna(rec["n"]) else 0
        is_pool = rec["task"] == "all"
        if not is_pool:
            n_by_task[rec["task"]] = n
        floor = (2.0 / math.prod(math.factorial(k) for k in n_by_task.values()) if is_pool and n_by_task
                 else min_exact_p(n))
        note = rec["note"]
        if not np.isfinite(rec["statistic"]):
            p = Shown(np.nan, np.nan)
        elif floor >= alpha:
            needed = next(k for k in range(2, 12) if min_exact_p(k) < alpha)
            p, note = Shown(np.nan, np.nan), f"not testable with {n} configurations (needs ≥ {needed})"
        else:
            p = correlation_shown(h.kind, np.asarray(rec["statistic"]), np.asarray(n), weak,
                                  n_strata=len(n_by_task) if is_pool else 1)
        (task_p.append(p) if not is_pool else None)
        if is_pool:
            pooled = p
        keep = {k: rec[k] for k in ("n", "statistic", "p_val", "p_kind", "ci_low", "ci_high", "effect_size",
                                    "effect_type")}
        rows.append(make_row(**_base(h, c, task=rec["task"], variant="pooled within tasks" if is_pool else "config",
                                     x=x, method="Spearman on configuration means; exact within-task permutations",
                                     **keep, p_support=float(p.support), p_contra=float(p.contra),
                                     verdict=str(verdict_of(p, alpha)),
                                     note="; ".join(filter(None, [note, f"smallest attainable p {floor:.3g}"])))))
    tasks_p = Shown(np.array([float(p.support) for p in task_p]), np.array([float(p.contra) for p in task_p]))
    holm = across_all(tasks_p)
    support = float(pooled.support)
    contra = float(np.nanmin([float(pooled.contra), float(holm.contra)])) if np.isfinite(
        [float(pooled.contra), float(holm.contra)]).any() else math.nan
    total = Shown(np.asarray(support), np.asarray(contra))
    verdict = str(verdict_of(total, alpha))
    note = ("the pooled within-task row is primary (configurations are the units; seeds averaged); "
            "a task that contradicts after Holm overrides it")
    if support < alpha and contra < alpha:
        verdict, note = INCONCLUSIVE, "tasks disagree: the pooled row supports it but a task contradicts it"
    summary = make_row(**_base(h, c, task="all", variant=SUMMARY, x=x, n=len(task_p), p_support=support,
                               p_contra=contra, verdict=verdict, note=note if not why else why))
    return total, [summary, *rows]


def _default_contrasts(c: _Context) -> list[dict[str, Any]]:
    """Every level against the factor's first level, per task, with its CI (no verdict)."""
    rows = []
    for factor in [f for f in factor_columns(c.df) if f in c.df.columns and c.df[f].nunique() > 1]:
        levels = ordered_levels(c.df[factor].dropna().unique(), spec_levels(c.df.attrs.get("spec") or {}, factor))
        ref, *others = [level_text(v) for v in levels]
        for task, part in c.df.groupby("task", sort=True):
            for level in others:
                d, note = matched_differences(part, factor, (level,), (ref,), c.y, c.scale)
                bad = degenerate_note(d) if not note.startswith(NOT_ENOUGH_DATA) else note
                s = paired_stats(d)
                lo, hi = s.ci(c.settings.alpha)
                rows.append(make_row(test="contrast", variant="matched", task=task, factor=factor, level=level,
                                     reference=ref, y=c.y, n=int(s.n), margin=c.scale.margin,
                                     confidence=1 - c.settings.alpha, method=f"per-seed {c.scale.name}s (matched blocks)",
                                     estimate=float(s.estimate) if s.n else None,
                                     ci_low=None if bad else float(lo), ci_high=None if bad else float(hi),
                                     note="; ".join(filter(None, [bad if bad != note else "", note]))))
    return rows


def hypothesis_tests(
    df: pd.DataFrame,
    hypotheses: list[Hypothesis] | None = None,
    *,
    settings: AnalysisSettings | None = None,
    y: str = contract.TEST_SCORE,
    exploratory: str = "",
    n_resamples: int = 9999,
    random_state: RandomState = None,
    baselines: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Return the verdict rows of each hypothesis: one ``summary`` row (``task == "all"``), then its evidence.

    ``hypotheses`` default to those recorded in ``df.attrs["spec"]``; a study without any gets
    every level-vs-first-level ``contrast`` with its CI instead. ``settings`` give margin, alpha and
    rho_weak (default: the spec's ``analysis:``). ``exploratory`` (non-empty: why) marks every
    verdict exploratory, e.g. a margin changed after the study was created. ``baselines``
    (``StudyData.baselines``) serve hypotheses with ``reference: best_baseline``: a level must show
    the hypothesis against every baseline of a task (intersection-union over the baselines).
    """
    from analysis._spec import read_settings

    _check_scores(df, y)
    spec: Mapping[str, Any] = df.attrs.get("spec") or {}
    settings = settings or read_settings(spec)
    hypotheses = read_hypotheses(spec) if hypotheses is None else hypotheses
    data, kept_out = one_per_cell(df)
    c = _Context(data, y, score_scale(data, settings.margin), settings, exploratory, n_resamples,
                 as_generator(random_state), baselines)
    if not hypotheses:
        return results_frame(_default_contrasts(c))
    results: dict[str, Shown] = {}
    rows: list[dict[str, Any]] = []
    for h in sorted(hypotheses, key=lambda h: bool(h.all_of)):  # conjunctions after their parts
        if h.all_of:
            total = all_of([results[p] for p in h.all_of])
            parts = ", ".join(f"{p}: {r[0]['verdict']}" for p in h.all_of for r in [[x for x in rows if
                               x["hypothesis"] == p and x["variant"] == SUMMARY]])
            rows.append(make_row(**_base(h, c, task="all", variant=SUMMARY, n=len(h.all_of),
                                         p_support=float(total.support), p_contra=float(total.contra),
                                         verdict=str(verdict_of(total, settings.alpha)),
                                         note=f"all of {parts} (Holm over the parts for contradiction)")))
            continue
        total, mine = (_correlation if h.kind in ("predicts", "no_prediction") else _contrast)(h, c)
        results[h.id] = total
        if kept_out:
            mine[0]["note"] = "; ".join(filter(None, [mine[0]["note"], kept_out]))
        rows.extend(mine)
    order = {h.id: i for i, h in enumerate(hypotheses)}
    rows.sort(key=lambda r: order[r["hypothesis"]])
    return results_frame(rows)

