"""Does a factor change the score? The blocked F test and contrasts per task; Friedman across tasks.

The primary test of a factor in a task is the blocked (repeated-measures) F test with seeds as blocks:
each seed is one block (a seed draws the data split, the initialisation and the training order, so
everything within a seed shares its draw), and the other factors' levels are averaged within each
(seed, level) cell. This is the repeated-measures design for the factor's main effect: in a fully
crossed within-seed layout its F with error = level × seed equals the F of the full factorial
repeated-measures ANOVA (the other factors' sums of squares are orthogonal to it). Treating each
(seed, other-levels) combination as an additional block would not be: those blocks share a seed, so
the level × seed variation would be counted several times and the error df inflated
(pseudo-replication; tests/analysis/test_calibration.py measures the over-rejection). No mixed model
is fitted: with a handful of seeds its Wald chi-square rejected a true null about twice as often as
alpha (issue 13, D6) and it decides nothing here.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._contrasts import compare, level_text, ordered_levels, per_seed, spec_levels
from analysis._load import factor_columns
from analysis._resampling import RandomState, adjust_pvalues, as_generator, correction_name
from harness import contract

__all__ = ["blocked_f", "factor_tests", "resolve_levels"]


def resolve_levels(df: pd.DataFrame, factor: str, reference: Any = None) -> tuple[list[Any], Any]:
    """Return ``(levels, reference)``: levels in the spec's order (``df.attrs["spec"]``) or sorted, and the
    reference level (given, else the first). Raises AnalysisError for an unknown factor or reference."""
    if factor not in df.columns:
        raise AnalysisError(f"no factor {factor!r} in the trials frame; factors are {factor_columns(df)}")
    levels = ordered_levels(df[factor].dropna().unique(), spec_levels(df.attrs.get("spec") or {}, factor))
    if not levels:
        raise AnalysisError(f"factor {factor!r} has no recorded levels")
    if reference is None:
        return levels, levels[0]
    for level in levels:
        if level_text(level) == level_text(reference):
            return levels, level
    raise AnalysisError(f"reference {reference!r} is not a level of {factor!r}; levels are "
                        f"{[level_text(v) for v in levels]}")


def blocked_f(y: np.ndarray) -> dict[str, np.ndarray]:
    """Return the blocked (repeated-measures) F test of the last axis on arrays ``y`` of shape ``(..., b, k)``.

    ``y[..., i, j]`` is seed ``i``'s mean at level ``j`` (a complete two-way layout without replication:
    b seed blocks × k levels). F = MS_level / MS_error with MS_error the level × seed interaction mean
    square, df = (k - 1, (k - 1)(b - 1)); p from the F distribution. Vectorised over leading axes.
    Returns ``F, p, df1, df2, ss_level, ss_error`` (``F`` and ``p`` NaN where the residual sum of squares
    is zero up to rounding: F would be rounding noise or infinite).
    """
    y = np.asarray(y, float)
    b, k = y.shape[-2], y.shape[-1]
    grand = y.mean(axis=(-2, -1), keepdims=True)
    level = y.mean(axis=-2, keepdims=True)
    seed = y.mean(axis=-1, keepdims=True)
    ss_level = b * ((level - grand) ** 2).sum(axis=(-2, -1))
    ss_error = ((y - level - seed + grand) ** 2).sum(axis=(-2, -1))
    df1, df2 = k - 1.0, (k - 1.0) * (b - 1.0)
    scale = np.abs(y).max(axis=(-2, -1))
    degenerate = ~(ss_error > b * k * (1e-12 * scale) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(degenerate, np.nan, (ss_level / df1) / (ss_error / df2))
    p = np.where(degenerate, np.nan, stats.f.sf(f, df1, df2))
    return {"F": f, "p": p, "df1": np.float64(df1), "df2": np.float64(df2), "ss_level": ss_level,
            "ss_error": ss_error}


_BLOCKED_METHOD = ("blocked F (repeated measures): level × seed without replication, other factors averaged "
                   "within each (seed, level); error = level × seed interaction")


def _complete_blocks(part: pd.DataFrame, factor: str, others: Sequence[str], y: str) -> tuple[pd.DataFrame, str]:
    """Return the seeds × levels table of complete blocks (seeds that have every cell of the task) and a note."""
    cells = part[[factor, *others]].map(level_text).astype(str).agg("\x1f".join, axis=1)
    wanted = cells.nunique()
    per_seed_cells = cells.groupby(part["seed"]).nunique()
    complete = per_seed_cells.index[per_seed_cells == wanted]
    notes = []
    dropped = len(per_seed_cells) - len(complete)
    if dropped:
        notes.append(f"{dropped} of {len(per_seed_cells)} seed(s) lack a cell (level × other factors) and were "
                     "dropped from the blocked F")
    kept = part[part["seed"].isin(complete)]
    # Mean over any repeats of a cell first, then over the other factors' levels: each cell weighs the same.
    cell_means = kept.groupby(["seed", factor, *others], observed=True)[y].mean().reset_index()
    table = cell_means.groupby(["seed", factor], observed=True)[y].mean().unstack(factor)
    table.columns = [level_text(c) for c in table.columns]
    return table, "; ".join(notes)


def _unblocked_f(table: pd.DataFrame) -> dict[str, Any]:
    groups = [table[c].dropna().to_numpy(float) for c in table.columns]
    n, k = sum(len(g) for g in groups), len(groups)
    if n - k < 1 or any(len(g) == 0 for g in groups):
        return {"note": f"{NOT_ENOUGH_DATA}: seeds are not shared across levels and too few for a one-way F"}
    pooled = np.concatenate(groups)
    ss_level = sum(len(g) * (g.mean() - pooled.mean()) ** 2 for g in groups)
    ss_error = sum(((g - g.mean()) ** 2).sum() for g in groups)
    if not ss_error > n * (1e-12 * np.abs(pooled).max()) ** 2:
        return {"note": "not evaluated: zero variance within levels (F undefined)", "n": n}
    f = (ss_level / (k - 1)) / (ss_error / (n - k))
    return {"variant": "unblocked", "n": n, "statistic": float(f), "df": k - 1.0, "df2": float(n - k),
            "p_val": float(stats.f.sf(f, k - 1, n - k)), "p_kind": "F",
            "effect_size": float(ss_level / (ss_level + ss_error)), "effect_type": "partial_eta_sq",
            "method": "one-way F on per-seed means (seeds not shared across levels, so no blocks)"}


def _factor_f(part: pd.DataFrame, factor: str, others: Sequence[str], y: str) -> dict[str, Any]:
    """Return the row values of the primary F test of ``factor`` in one task (blocked, else unblocked)."""
    finite = part[np.isfinite(part[y].to_numpy(float))]
    notes = [f"{len(part) - len(finite)} trial(s) with a non-finite score left out"] if len(finite) < len(part) else []
    table, note = _complete_blocks(finite, factor, others, y)
    notes += [note] if note else []
    k = finite[factor].map(level_text).nunique()
    if len(table) >= 2 and table.shape[1] == k >= 2:
        res = blocked_f(table.to_numpy(float))
        values: dict[str, Any] = {"variant": "blocked", "n": len(table), "df": float(res["df1"]),
                                  "df2": float(res["df2"]), "p_kind": "F", "method": _BLOCKED_METHOD}
        ss, err = float(res["ss_level"]), float(res["ss_error"])
        if np.isnan(res["F"]):
            notes.append("not evaluated: zero residual (level × seed) variance, F undefined")
        else:
            values.update(statistic=float(res["F"]), p_val=float(res["p"]), effect_size=ss / (ss + err),
                          effect_type="partial_eta_sq")
        return {**values, "note": "; ".join(notes)}
    seeds_per_level = finite.groupby(factor, observed=True)["seed"].nunique()
    if finite.groupby("seed")[factor].nunique().max() <= 1 and len(seeds_per_level) >= 2:
        values = _unblocked_f(per_seed(finite, factor, y).rename(columns=level_text))
        return {**values, "note": "; ".join(notes + ([values["note"]] if "note" in values else []))}
    return {"n": len(table), "note": "; ".join(notes + [f"{NOT_ENOUGH_DATA}: needs 2 seeds with every cell"])}


def _across_tasks(means: pd.DataFrame, factor: str, common: dict[str, Any], correction: str) -> list[dict[str, Any]]:
    means = means.dropna()
    base = {**common, "test": "friedman", "task": "all", "n": len(means),
            "method": "Friedman over per-task means (blocks = tasks)", "y": common["y"]}
    if len(means) < 3 or means.shape[1] < 2:
        return [make_row(**base, note=f"{NOT_ENOUGH_DATA}: needs 3 tasks with every level")]
    rows: list[dict[str, Any]] = []
    if means.shape[1] >= 3:
        res = stats.friedmanchisquare(*[means[c].to_numpy(float) for c in means.columns])
        rows.append(make_row(**base, statistic=float(res.statistic), df=means.shape[1] - 1.0,
                             p_val=float(res.pvalue), p_kind="chi2", p_adj=float(res.pvalue)))
    posthoc: list[dict[str, Any]] = []
    for a, b in itertools.combinations(means.columns, 2):
        d = means[a].to_numpy(float) - means[b].to_numpy(float)
        row = {**common, "test": "wilcoxon", "task": "all", "n": len(d), "level": level_text(a),
               "reference": level_text(b), "method": "Wilcoxon signed-rank on per-task means",
               "family": f"post-hoc {factor}", "estimate": float(np.median(d))}
        if not np.any(d != 0):
            posthoc.append(make_row(**row, note="every task has the same mean at both levels"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.wilcoxon(d)
        posthoc.append(make_row(**row, statistic=float(res.statistic), p_val=float(res.pvalue),
                                p_kind="exact" if len(d) <= 50 else "normal"))
    adj = adjust_pvalues([r["p_val"] for r in posthoc], correction)
    for r, p in zip(posthoc, adj):
        r["p_adj"] = p
    return rows + posthoc


def factor_tests(
    df: pd.DataFrame,
    factor: str | Sequence[str],
    *,
    reference: Any = None,
    y: str = contract.TEST_SCORE,
    by: str = "task",
    family: str | None = None,
    n_resamples: int = 9999,
    random_state: RandomState = None,
    correction: str = "holm",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Return blocked-F and contrast rows per task, and across-task rows, for one factor (or several).

    Input: the tidy trials frame of :func:`load_trials` (one row per trial; columns ``by``, ``seed``,
    ``factor``, ``y`` and the other factors). Per task: one ``anova`` row, the blocked
    (repeated-measures) F test with seeds as blocks (``variant = blocked``; see the module docstring
    and :func:`blocked_f`): seeds lacking any cell of the task are dropped (the note counts them), the
    other factors that vary in the task are averaged within each (seed, level), and
    F = MS_level / MS_(level × seed) with df = (k - 1, (k - 1)(b - 1)), partial eta² =
    SS_level / (SS_level + SS_error). When no seed has two levels (disjoint seeds) it is a one-way F on
    per-seed means (``variant = unblocked``). A zero residual variance gives a note, not a p-value.
    ``p_adj`` is Holm (``correction``) over tasks. Then one ``contrast`` row per level against
    ``reference`` on per-seed means (other factors averaged), paired by seed when two or more seeds are
    shared (``effect_type = hedges_g_av``), else explicitly unpaired Welch (``hedges_g``); ``p_val`` is
    the t-test's, ``p_perm`` the sign-flip (label) permutation's. Contrast ``p_adj`` is corrected over
    ``family``: None = the factor's contrasts in this call, ``"task"`` = each task separately, any other
    text = a label for them. Across 3+ tasks: Friedman over per-task means (3+ levels), then pairwise
    Wilcoxon with ``correction``. ``reference`` applies only when one factor is given.
    """
    factors = [factor] if isinstance(factor, str) else list(factor)
    if y not in df.columns or by not in df.columns or "seed" not in df.columns:
        raise AnalysisError(f"the trials frame needs columns {by!r}, 'seed' and {y!r}; it has {list(df.columns)}")
    correction_name(correction)
    rng = as_generator(random_state)
    data = df.dropna(subset=[y])
    varying: dict[str, list[str]] = {}
    for task, part in data.groupby(by, sort=True):
        varying[str(task)] = [f for f in factor_columns(df)
                              if f in part.columns and f not in (by, "seed", y) and part[f].nunique(dropna=True) > 1]
    rows: list[dict[str, Any]] = []
    for f in factors:
        ref = reference if len(factors) == 1 else None
        rows.extend(_one_factor(data, f, ref, y, by, family, n_resamples, rng, correction, confidence, varying))
    return results_frame(rows)


def _one_factor(data: pd.DataFrame, factor: str, reference: Any, y: str, by: str, family: str | None,
                n_resamples: int, rng: np.random.Generator, correction: str, confidence: float,
                varying: dict[str, list[str]]) -> list[dict[str, Any]]:
    levels, ref = resolve_levels(data, factor, reference)
    common = {"factor": factor, "y": y, "confidence": confidence, "alternative": "two-sided",
              "correction": correction_name(correction)}
    rows: list[dict[str, Any]] = []
    contrast_rows: list[dict[str, Any]] = []
    task_means: dict[str, pd.Series] = {}
    for task, part in data.groupby(by, sort=True):
        present = [lv for lv in levels if (part[factor].map(level_text) == level_text(lv)).any()]
        if len(present) < 2:
            for test in ("anova", "contrast"):
                rows.append(make_row(**common, test=test, task=task, n=len(part),
                                     note=f"{NOT_ENOUGH_DATA}: fewer than two levels of {factor}"))
            continue
        others = [f for f in varying[str(task)] if f != factor]
        rows.append(make_row(**common, test="anova", task=task, family=f"anova {factor}",
                             **{"n": len(part), **_factor_f(part, factor, others, y)}))
        table = per_seed(part, factor, y)
        table.columns = [level_text(c) for c in table.columns]
        task_means[str(task)] = table.mean(axis=0)
        for level in present:
            if level_text(level) == level_text(ref):
                continue
            base = {**common, "test": "contrast", "task": task, "level": level_text(level),
                    "reference": level_text(ref), "method": "t on per-seed means"}
            if level_text(ref) not in table.columns:
                contrast_rows.append(make_row(**base, note=f"{NOT_ENOUGH_DATA}: reference level absent"))
                continue
            result = compare(table[level_text(level)], table[level_text(ref)], confidence=confidence,
                             n_resamples=n_resamples, rng=rng)
            if result is None:
                contrast_rows.append(make_row(**base, note=f"{NOT_ENOUGH_DATA}: fewer than two seeds a level"))
            else:
                contrast_rows.append(make_row(**base, **result.as_row()))
    idx = [i for i, r in enumerate(rows) if r["test"] == "anova"]
    for i, p in zip(idx, adjust_pvalues([rows[i]["p_val"] for i in idx], correction)):
        rows[i]["p_adj"] = p
    label = family if family not in (None, "task") else f"contrasts {factor}"
    groups = ([[r for r in contrast_rows if r["task"] == t] for t in dict.fromkeys(r["task"] for r in contrast_rows)]
              if family == "task" else [contrast_rows])
    for group in groups:
        for r, p in zip(group, adjust_pvalues([r["p_val"] for r in group], correction)):
            r["p_adj"] = p
            r["family"] = f"{label} {r['task']}" if family == "task" else label
    across: list[dict[str, Any]] = []
    if len(task_means) >= 2:
        means = pd.DataFrame(task_means).T
        means = means[[level_text(lv) for lv in levels if level_text(lv) in means.columns]]
        across = _across_tasks(means, factor, common, correction)
    return rows + contrast_rows + across
