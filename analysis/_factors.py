"""Does a factor change the score? ANOVA, mixed model and contrasts per task; Friedman across tasks."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._contrasts import compare, level_text, ordered_levels, per_seed, spec_levels
from analysis._load import factor_columns
from analysis._resampling import RandomState, adjust_pvalues, as_generator, correction_name
from harness import contract

__all__ = ["factor_tests", "resolve_levels"]


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


class _TaskModels:
    """The models of one task, fitted once and shared by every factor tested in the same call.

    Factor columns are renamed ``f0, f1, ...`` (formula terms cannot hold dots) with text levels.
    """

    def __init__(self, part: pd.DataFrame, factors: Sequence[str], y: str) -> None:
        self.names = {f: f"f{i}" for i, f in enumerate(factors)}
        self.frame = pd.DataFrame({"y": part[y].to_numpy(float), "seed": part["seed"].map(level_text).to_numpy()})
        for f, name in self.names.items():
            self.frame[name] = part[f].map(level_text).to_numpy()
        self.legend = ", ".join(f"{n} = {f}" for f, n in self.names.items())
        self._anova: dict[bool, tuple[pd.DataFrame, float, str] | str] = {}
        self._mixed: tuple[pd.DataFrame, str, str] | None = None

    def _terms(self) -> str:
        return " + ".join(f"C({n})" for n in self.names.values())

    def anova(self, factor: str, blocked: bool) -> dict[str, Any]:
        """Return the type II ANOVA row values of ``factor`` (seed as a block when ``blocked``)."""
        if blocked not in self._anova:
            formula = f"y ~ {self._terms()}" + (" + C(seed)" if blocked else "")
            model = smf.ols(formula, self.frame).fit()
            self._anova[blocked] = ((anova_lm(model, typ=2), float(model.df_resid), formula)
                                    if model.df_resid >= 1 else formula)
        fitted = self._anova[blocked]
        if isinstance(fitted, str):
            return {"note": f"{NOT_ENOUGH_DATA}: no residual degrees of freedom", "method": fitted}
        table, df_resid, formula = fitted
        term = f"C({self.names[factor]})"
        ss, ss_res = float(table.loc[term, "sum_sq"]), float(table.loc["Residual", "sum_sq"])
        return {"statistic": float(table.loc[term, "F"]), "df": float(table.loc[term, "df"]), "df2": df_resid,
                "p_val": float(table.loc[term, "PR(>F)"]), "p_kind": "F",
                "effect_size": ss / (ss + ss_res) if ss + ss_res > 0 else math.nan,
                "effect_type": "partial_eta_sq", "method": f"OLS type II: {formula} ({self.legend})"}

    def mixed(self, factor: str) -> dict[str, Any]:
        """Return the Wald chi-square row values of ``factor`` in the seed random-intercept model."""
        if self._mixed is None:
            formula = f"y ~ {self._terms()}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = smf.mixedlm(formula, self.frame, groups=self.frame["seed"]).fit()
                table = result.wald_test_terms(scalar=True).table
            notes = sorted({str(w.message).splitlines()[0][:70] for w in caught
                            if "Convergence" in type(w.message).__name__})
            note = (f"{len(notes)} ConvergenceWarning(s) from statsmodels, e.g. {notes[-1]}" if notes else "")
            self._mixed = (table, formula, note)
        table, formula, note = self._mixed
        row = table.loc[f"C({self.names[factor]})"]
        return {"statistic": float(row["statistic"]), "df": float(row["df_constraint"]),
                "p_val": float(row["pvalue"]), "p_kind": "chi2", "note": note,
                "method": f"MixedLM {formula}, seed random intercept; Wald chi2 ({self.legend})"}


def _seeds_shared(part: pd.DataFrame, factor: str) -> bool:
    seeds_per_level = part.groupby(factor, observed=True)["seed"].apply(lambda s: frozenset(s.dropna()))
    common = frozenset.intersection(*seeds_per_level) if len(seeds_per_level) else frozenset()
    return len(common) >= 2


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
    """Return ANOVA, mixed-model and contrast rows per task, and across-task rows, for one factor (or several).

    Input: the tidy trials frame of :func:`load_trials` (one row per trial; columns ``by``, ``seed``,
    ``factor``, ``y`` and the other factors). Per task: OLS type II ANOVA of ``y`` on every factor
    that varies in the task (plus seed as a block when seeds are shared across the factor's levels)
    with partial eta²; a mixed model with a seed random intercept when 3+ seeds are shared; and one
    ``contrast`` row per level against ``reference`` on per-seed means (other factors averaged),
    paired by seed when two or more seeds are shared (``effect_type = hedges_g_av``), else explicitly
    unpaired Welch (``hedges_g``); ``p_val`` is the t-test's, ``p_perm`` the sign-flip (label)
    permutation's. Contrast ``p_adj`` is corrected over ``family``: None = the factor's contrasts in
    this call, ``"task"`` = each task separately, any other text = a label for them. Across 3+
    tasks: Friedman over per-task means (3+ levels), then pairwise Wilcoxon with ``correction``.
    Several factors share each task's model fits; ``reference`` then applies to none of them.
    """
    factors = [factor] if isinstance(factor, str) else list(factor)
    if y not in df.columns or by not in df.columns or "seed" not in df.columns:
        raise AnalysisError(f"the trials frame needs columns {by!r}, 'seed' and {y!r}; it has {list(df.columns)}")
    correction_name(correction)
    rng = as_generator(random_state)
    data = df.dropna(subset=[y])
    models: dict[str, _TaskModels] = {}
    for task, part in data.groupby(by, sort=True):
        varying = [f for f in factor_columns(df) if f not in (by, "seed", y) and part[f].nunique(dropna=True) > 1]
        models[str(task)] = _TaskModels(part, varying, y)
    rows: list[dict[str, Any]] = []
    for f in factors:
        ref = reference if len(factors) == 1 else None
        rows.extend(_one_factor(data, f, ref, y, by, family, n_resamples, rng, correction, confidence, models))
    return results_frame(rows)


def _one_factor(data: pd.DataFrame, factor: str, reference: Any, y: str, by: str, family: str | None,
                n_resamples: int, rng: np.random.Generator, correction: str, confidence: float,
                models: dict[str, _TaskModels]) -> list[dict[str, Any]]:
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
        task_models = models[str(task)]
        shared = _seeds_shared(part, factor)
        for test in ("anova", "mixedlm"):
            if test == "mixedlm" and not (shared and part["seed"].nunique() >= 3):
                rows.append(make_row(**common, test=test, task=task, n=len(part),
                                     note=f"{NOT_ENOUGH_DATA}: needs 3 seeds shared across levels"))
                continue
            try:
                values = task_models.anova(factor, shared) if test == "anova" else task_models.mixed(factor)
            except (ValueError, np.linalg.LinAlgError, KeyError) as exc:
                values = {"note": f"model failed: {type(exc).__name__}: {exc}"[:200]}
            rows.append(make_row(**common, test=test, task=task, n=len(part), family=f"{test} {factor}", **values))
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
    for test in ("anova", "mixedlm"):
        idx = [i for i, r in enumerate(rows) if r["test"] == test]
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
