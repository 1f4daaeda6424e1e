"""ORCA beside classical baselines: every configuration and every baseline per task, and best against best.

A method that loses to 1-NN must say so. Per task, each ORCA configuration (a
combination of the study's varying factors) and each baseline of the spec's
``baselines:`` gets its mean score over seeds with a t interval; then the best
ORCA configuration is compared with the best baseline, paired by seed
(difference oriented so that positive means ORCA is better). Picking the best
configuration on the same scores favours ORCA, so a "below the best baseline"
finding is conservative, an "above" one optimistic; the rows say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis._columns import make_row, results_frame
from analysis._contrasts import level_text, mean_ci
from analysis._load import factor_columns
from analysis._render import Document
from analysis.sections._section import ReportView, Section, TestInputs, pick
from harness import contract

__all__ = ["BASELINES"]

_TASK, _SEED = contract.PARAM_TASK, contract.PARAM_SEED
_TEST = "baseline"


def _configs(part: pd.DataFrame, factors: list[str]) -> dict[str, pd.Series]:
    """Return configuration label -> per-seed mean score (index: seed)."""
    if not factors:
        return {"ORCA": part.groupby(_SEED)["score"].mean()}
    out = {}
    for key, group in part.groupby(factors, dropna=False, sort=False):
        values = key if isinstance(key, tuple) else (key,)
        label = "ORCA " + ", ".join(f"{f}={level_text(v)}" for f, v in zip(factors, values))
        out[label] = group.groupby(_SEED)["score"].mean()
    return out


def _tests(inputs: TestInputs) -> pd.DataFrame:
    baselines = inputs.baselines
    if baselines is None or baselines.empty:
        return results_frame([])
    trials = inputs.trials
    factors = [f for f in factor_columns(trials) if trials[f].nunique(dropna=True) >= 2]
    rows = []
    for task, base_part in baselines.groupby(_TASK, sort=False):
        part = trials[trials[_TASK] == task].assign(score=trials[inputs.y])
        direction = str(base_part[contract.DIRECTION].dropna().iloc[0]) if base_part[contract.DIRECTION].notna().any() \
            else "maximize"
        sign = 1.0 if direction == "maximize" else -1.0
        scores: dict[str, pd.Series] = dict(_configs(part, factors)) if not part.empty else {}
        orca_labels = list(scores)
        for name, group in base_part.groupby(contract.BASELINE, sort=False):
            scores[str(name)] = group.groupby(_SEED)[contract.TEST_SCORE].mean()
        for label, series in scores.items():
            mean, low, high = mean_ci(series.to_numpy(dtype=float))
            rows.append(make_row(test=_TEST, task=task, variant="orca" if label in orca_labels else "baseline",
                                 level=label, method="mean over seeds, t interval", y=inputs.y, n=int(series.size),
                                 estimate=mean, ci_low=low, ci_high=high, confidence=0.95))
        base_names = [n for n in scores if n not in orca_labels]
        if not orca_labels or not base_names:
            continue
        best_orca = max(orca_labels, key=lambda k: sign * float(scores[k].mean()))
        best_base = max(base_names, key=lambda k: sign * float(scores[k].mean()))
        paired = pd.concat([scores[best_orca], scores[best_base]], axis=1, join="inner").dropna()
        diff = sign * (paired.iloc[:, 0] - paired.iloc[:, 1]).to_numpy(dtype=float)
        mean, low, high = mean_ci(diff)
        if diff.size >= 3 and np.std(diff) > 0:
            t = float(mean / (diff.std(ddof=1) / np.sqrt(diff.size)))
            p = float(2 * stats.t.sf(abs(t), diff.size - 1))
        else:
            t, p = np.nan, np.nan
        if np.isfinite(high) and high < 0:
            word = "ORCA's best configuration is below the best baseline"
        elif np.isfinite(low) and low > 0:
            word = "ORCA's best configuration is above the best baseline (optimistic: chosen on these scores)"
        else:
            word = "the data cannot tell ORCA's best configuration from the best baseline"
        rows.append(make_row(test=_TEST, task=task, variant="best-vs-best", level=best_orca, reference=best_base,
                             method="paired t on per-seed differences (positive: ORCA better)", y=inputs.y,
                             n=int(diff.size), statistic=t, df=diff.size - 1, p_val=p, p_kind="t",
                             estimate=mean, ci_low=low, ci_high=high, confidence=0.95, alternative="two-sided",
                             note=word))
    return results_frame(rows)


def _render(doc: Document, view: ReportView, rows: pd.DataFrame) -> None:
    if rows.empty:
        return
    doc.heading(2, "ORCA beside classical baselines")
    doc.para("Each ORCA configuration and each baseline of the spec's `baselines:` on the same splits (the "
             "baselines load the task with the cells' data settings and seed): mean score over seeds with a 95% "
             "t interval; then ORCA's best configuration against the best baseline, paired by seed.")
    for task, part in rows.groupby("task", sort=False):
        doc.heading(3, f"Task `{task}`")
        scores = part[part["variant"] != "best-vs-best"]
        doc.table(pick(scores, ["variant", "level", "n", "estimate", "ci_low", "ci_high"]))
        best = part[part["variant"] == "best-vs-best"]
        for row in best.itertuples():
            doc.para(f"**{row.note[:1].upper() + row.note[1:]}:** {row.level} vs {row.reference}: difference {row.estimate:.4g} "
                     f"[{row.ci_low:.4g}, {row.ci_high:.4g}] over {row.n} seeds (p = {row.p_val:.3g}).")


BASELINES = Section("baselines", "Evidence", _render, _tests)
