"""Report figures as PNG files, drawn on Agg canvases (no pyplot, no global backend change)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from analysis._contrasts import level_text, ordered_levels, per_seed, spec_levels
from harness import contract

__all__ = ["otdd_score_figure", "factor_figure", "curves_figure", "status_figure"]

_DPI = 90


def _grid(n: int, width: float = 3.8, height: float = 3.2) -> tuple[Figure, list[Axes]]:
    cols = max(1, min(n, 4))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(width * cols, height * rows))
    FigureCanvasAgg(fig)
    # Fixed margins: constrained layout costs ~0.2 s a figure, which a 5,000-trial report notices.
    fig.subplots_adjust(left=0.8 / (width * cols), right=1 - 0.15 / (width * cols),
                        bottom=0.95 / (height * rows), top=1 - 0.35 / (height * rows),
                        wspace=0.45, hspace=0.85)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(max(n, 1))]
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI)
    return path


_MAX_LEGEND = 8  # configurations coloured apart; more are drawn in one colour


def otdd_score_figure(df: pd.DataFrame, path: Path, *, x: str = contract.OTDD_AFTER, y: str = contract.TEST_SCORE,
                      by: Sequence[str] = ()) -> Path | None:
    """Return ``path`` after drawing ``y`` against ``x`` per task with an OLS line and its 95% CI band.

    Input: the tidy trials frame (columns ``task``, ``x``, ``y`` and the ``by`` columns). Points
    are coloured by configuration (the combination of the ``by`` columns, at most
    ``_MAX_LEGEND`` of them), so that trials of different settings, e.g. OTDD to different
    proxies, are told apart. Returns None when no task has two distinct ``x`` values.
    """
    by = [c for c in by if c in df.columns and df[c].nunique(dropna=False) > 1]
    data = df[["task", x, y, *by]].dropna(subset=["task", x, y])
    tasks = [t for t, part in data.groupby("task", sort=True) if part[x].nunique() >= 2]
    if not tasks:
        return None
    config = (data[by].apply(lambda r: ", ".join(f"{c}={level_text(v)}" for c, v in r.items()), axis=1)
              if by else pd.Series("", index=data.index))
    # Legend in the spec's level order (0, 4, 16, 48 rather than text order 0, 16, 4, 48).
    orders = {c: [level_text(v) for v in ordered_levels(data[c].unique(), spec_levels(df.attrs.get("spec") or {}, c))]
              for c in by}
    rank = {name: tuple(orders[c].index(level_text(v)) for c, v in row.items())
            for name, row in zip(config, data[by].to_dict("records"))} if by else {}
    names = sorted(config.unique(), key=lambda name: rank.get(name, ()))
    colours = {name: f"C{i}" for i, name in enumerate(names)} if 1 < len(names) <= _MAX_LEGEND else {}
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = data[data["task"] == task]
        xs, ys = part[x].to_numpy(float), part[y].to_numpy(float)
        alpha = 0.4 if xs.size > 200 else 0.85
        if colours:
            for name in names:
                mask = (config[part.index] == name).to_numpy()
                if mask.any():
                    ax.scatter(xs[mask], ys[mask], s=22, alpha=alpha, color=colours[name], linewidths=0, label=name)
            ax.legend(fontsize=7, loc="best")
        else:
            ax.scatter(xs, ys, s=14, alpha=alpha, color="tab:blue", linewidths=0)
        if xs.size >= 3:
            fit = sm.OLS(ys, sm.add_constant(xs)).fit()
            grid = np.linspace(xs.min(), xs.max(), 50)
            pred = fit.get_prediction(sm.add_constant(grid)).summary_frame(alpha=0.05)
            ax.plot(grid, pred["mean"], color="tab:red", lw=1.5)
            ax.fill_between(grid, pred["mean_ci_lower"], pred["mean_ci_upper"], color="tab:red", alpha=0.2)
        ax.set_title(str(task))
        ax.set_xlabel(x)
        ax.set_ylabel(y)
    return _save(fig, path)


_MAX_SEED_POINTS = 30  # per-seed values are drawn beside the mean up to this many seeds


def factor_figure(df: pd.DataFrame, factor: str, path: Path, *, y: str = contract.TEST_SCORE,
                  baselines: pd.DataFrame | None = None) -> Path | None:
    """Return ``path`` after drawing the mean ``y`` per level of ``factor`` with 95% t CIs over seeds, per task.

    Levels are in the spec's order (``df.attrs["spec"]``), else sorted; each seed's value (grey,
    beside the mean) is drawn too when there are few seeds. Input: the tidy trials frame (``task``,
    ``seed``, ``factor``, ``y``); other factors are averaged within each (level, seed) first.
    ``baselines`` (``StudyData.baselines``): each baseline of a task is a dashed horizontal line at
    its mean ``test_score`` over seeds, labelled. Returns None when the factor has no recorded level.
    """
    data = df.dropna(subset=[y, factor])
    if data.empty:
        return None
    order = [level_text(v) for v in ordered_levels(data[factor].unique(),
                                                   spec_levels(df.attrs.get("spec") or {}, factor))]
    tasks = sorted(data["task"].unique())
    fig, axes = _grid(len(tasks))
    if max(map(len, order)) > 6:  # room below the axes for rotated level names and the axis label
        rows = math.ceil(len(tasks) / max(1, min(len(tasks), 4)))
        fig.subplots_adjust(bottom=1.3 / (3.2 * rows), hspace=1.2)
    for ax, task in zip(axes, tasks):
        table = per_seed(data[data["task"] == task], factor, y)
        table.columns = [level_text(c) for c in table.columns]
        pos, means, half = [], [], []
        for i, lv in enumerate(order):
            if lv not in table.columns:
                continue
            vals = table[lv].dropna().to_numpy(float)
            pos.append(i)
            means.append(vals.mean())
            sem = vals.std(ddof=1) / math.sqrt(vals.size) if vals.size > 1 else math.nan
            half.append(stats.t.ppf(0.975, vals.size - 1) * sem if vals.size > 1 else 0.0)
            if vals.size <= _MAX_SEED_POINTS:  # few seeds: show each seed's value beside the mean
                ax.scatter(np.full(vals.size, i + 0.12), vals, s=12, color="0.45", linewidths=0, zorder=3)
        ax.errorbar(pos, means, yerr=half, fmt="o", capsize=4, color="tab:blue")
        _baseline_lines(ax, baselines, task)
        rotate = max(map(len, order)) > 6
        # Rotated labels end at their tick (ha="right"), so the last one stays inside the figure.
        ax.set_xticks(range(len(order)), order, rotation=30 if rotate else 0, ha="right" if rotate else "center")
        ax.set_title(str(task))
        ax.set_xlabel(factor)
        ax.set_ylabel(f"mean {y} (95% CI)")
    return _save(fig, path)


def _baseline_lines(ax: Axes, baselines: pd.DataFrame | None, task: str) -> None:
    """Draw each baseline of ``task`` as a dashed line at its mean test score, with a legend."""
    if baselines is None or baselines.empty:
        return
    mine = baselines[baselines[contract.PARAM_TASK] == task]
    means = mine.groupby(contract.BASELINE, sort=False)[contract.TEST_SCORE].mean().dropna()
    for i, (name, mean) in enumerate(means.items()):
        ax.axhline(float(mean), ls="--", lw=1.1, color=f"C{(i + 1) % 10}", label=f"baseline {name}", zorder=1)
    if len(means):
        ax.legend(fontsize=7, loc="best")


_CURVE_SPLIT = "embedder.epochs"


def curves_figure(curves: pd.DataFrame, path: Path) -> Path | None:
    """Return ``path`` after drawing mean OTDD per alignment step (± 1 SD over trials), per task.

    Input: the long ``curves`` frame of :class:`StudyData` (``task, step, otdd`` and factor columns);
    lines are split by ``embedder.epochs`` when present, else by curve length.
    Returns None when no curve was recorded.
    """
    if curves.empty or curves["otdd"].notna().sum() == 0:
        return None
    curves = curves.dropna(subset=["otdd"])
    by = _CURVE_SPLIT if _CURVE_SPLIT in curves.columns else None
    if by is None:
        length = curves.groupby("trial")["step"].transform("max")
        curves = curves.assign(steps=length)
        by = "steps"
    tasks = sorted(curves["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        part = curves[curves["task"] == task]
        for key, group in part.groupby(by, sort=True):
            summary = group.groupby("step")["otdd"].agg(["mean", "std"]).reset_index()
            line = ax.plot(summary["step"], summary["mean"], marker="." if len(summary) < 30 else None,
                           label=f"{by}={level_text(key)}")
            ax.fill_between(summary["step"], summary["mean"] - summary["std"].fillna(0),
                            summary["mean"] + summary["std"].fillna(0), alpha=0.15, color=line[0].get_color())
        ax.set_title(str(task))
        ax.set_xlabel("alignment epoch (0 = before)")
        ax.set_ylabel("OTDD")
        ax.legend(fontsize=7)
    return _save(fig, path)


def status_figure(summary: pd.DataFrame, path: Path) -> Path:
    """Return ``path`` after drawing a bar per trial state of the ``summary`` frame (``state, count``)."""
    fig, (ax,) = _grid(1, width=5.0, height=2.8)
    colors = {"COMPLETE": "tab:green", "DUPLICATE": "tab:gray", "FAIL": "tab:red"}
    ax.bar(summary["state"], summary["count"], color=[colors.get(s, "tab:blue") for s in summary["state"]])
    for i, c in enumerate(summary["count"]):
        ax.annotate(str(int(c)), (i, c), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("trials")
    ax.set_title("trial status")
    ax.tick_params(axis="x", labelsize=8)
    return _save(fig, path)
