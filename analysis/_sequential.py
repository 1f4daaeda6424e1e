"""Group-sequential verdicts: run seeds until a hypothesis is decided, with its error rates held across looks.

A study with ``seeds: {start, step, max}`` looks at its data after ``start``, ``start + step``,
... and ``max`` seeds (a fixed schedule). Every "shown" of the verdict rules (:mod:`analysis._rules`)
is a one-sided t test; here each is a *group-sequential* test (Jennison & Turnbull 2000, ch. 7):

- **alpha spending** (Lan & DeMets 1983): the one-sided test may spend ``alpha(t)`` of its alpha
  by information fraction ``t = n / max``: ``pocock`` (default), ``alpha * log(1 + (e - 1) t)``,
  which spends early (seeds are expensive; large effects should stop at once), or ``obf``
  (O'Brien-Fleming type), ``2 - 2 Phi(z_(1 - alpha/2) / sqrt t)``, which spends almost nothing early;
- **boundaries on the t scale, simulated** down to n = 3: the t statistics of one sequence of
  normal differences at the looks are dependent and heavy-tailed at small n, so the nominal
  one-sided p thresholds of each look are found from 100,000 simulated null sequences
  (seeded, cached), look by look, so that the probability of crossing by look k is the spent
  ``alpha(t_k)``. They are tabulated for a grid of overall levels, which turns each look's fixed-n p
  into a *repeated p-value* q (the smallest overall level at which the test has crossed by then);
  q < alpha is "shown", and the rules' combinations (TOST, intersection-union, Holm, Bonferroni)
  apply to q unchanged, each part at its own share of alpha;
- **frozen verdicts**: a hypothesis's verdict is the one of the first look at which it is
  supported or contradicted; later looks do not change it;
- **non-binding futility**: from the second look on, a hypothesis is *futile* when, at the observed
  difference and SD, it could not be decided by ``max`` seeds; it then stops asking for seeds. The boundaries
  ignore futility, so stopping for it only lowers the error rates.

``predicts`` / ``no_prediction`` hypotheses have configurations, not seeds, as units: more seeds
do not add units, so they are evaluated once, at the last look, with the fixed rules, and never
keep seeds open. Confidence sequences were not used: at n <= 20 they almost never decide.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis._columns import NOT_ENOUGH_DATA, AnalysisError, make_row, results_frame
from analysis._contrasts import level_text
from analysis._hypotheses import (BEST_BASELINE, SUMMARY, Scale, baseline_per_seed, matched_per_seed, one_per_cell,
                                  score_scale, task_list)
from analysis._rules import (CONTRADICTED, INCONCLUSIVE, NOT_EVALUATED, SUPPORTED, Shown, across_all, across_k,
                             all_of, degenerate_note, levels_some, paired_stats, verdict_of)
from analysis._spec import AnalysisSettings, Hypothesis, read_hypotheses, read_settings
from harness import contract

__all__ = ["SEQUENTIAL", "SPENDING", "Design", "look_schedule", "needed_levels", "nominal_levels", "repeated_p",
           "sequential_shown", "sequential_tests", "still_open"]

SEQUENTIAL = "sequential"
"""The ``test`` of every sequential row."""
FUTILE = "futile"
OPEN = "open"
"""How a summary row's note starts while the hypothesis is neither decided nor futile (:func:`still_open`)."""

SPENDING: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "pocock": lambda t, a: a * np.log1p((math.e - 1) * t),
    "obf": lambda t, a: 2 * stats.norm.sf(stats.norm.isf(a / 2) / np.sqrt(t)),
}
"""Lan-DeMets spending functions: information fraction ``t`` in (0, 1] and overall one-sided level -> alpha spent."""

_LEVELS = np.geomspace(1e-6, 0.5, 160)
"""Overall one-sided levels at which boundaries are tabulated (q below 1e-6 reads as 1e-6)."""
N_SIMS = 100_000
_SIM_SEED = 20_261_202


@dataclass(frozen=True)
class Design:
    """A group-sequential design: the seeds at each look (ascending; the last is ``max``) and the spending."""

    looks: tuple[int, ...]
    spending: str = "pocock"

    def __post_init__(self) -> None:
        if not self.looks or self.looks[0] < 3 or list(self.looks) != sorted(set(self.looks)):
            raise AnalysisError(f"sequential looks must be ascending seed counts from 3 up, got {self.looks}")
        if self.spending not in SPENDING:
            raise AnalysisError(f"unknown alpha spending {self.spending!r}; expected one of {sorted(SPENDING)}")

    @property
    def max(self) -> int:
        """Return the seeds at the last look."""
        return self.looks[-1]

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Design | None:
        """Return the design a study recorded in its spec (``adaptive``), or None for a fixed design."""
        block = spec.get("adaptive")
        if not isinstance(block, Mapping):
            return None
        return cls(look_schedule(int(block["start"]), int(block["step"]), int(block["max"])),
                   str(block.get("spending", "pocock")))


def look_schedule(start: int, step: int, maximum: int) -> tuple[int, ...]:
    """Return the seed counts of the looks: ``start, start + step, ...``, and ``maximum`` last."""
    if not 3 <= start <= maximum or step < 1:
        raise AnalysisError(f"seeds: start {start}, step {step}, max {maximum}: expected 3 <= start <= max, step >= 1")
    looks = list(range(start, maximum + 1, step))
    if looks[-1] != maximum:
        looks.append(maximum)
    return tuple(looks)


@functools.lru_cache(maxsize=16)
def nominal_levels(looks: tuple[int, ...], spending: str = "pocock", n_sims: int = N_SIMS) -> np.ndarray:
    """Return ``(len(_LEVELS), K)`` nominal one-sided p thresholds: at overall level a, look k rejects p < nu[a, k].

    Simulated from ``n_sims`` sequences of ``max`` standard normal differences (the boundary null of
    a one-sided t test; t is scale-free), the same sequences for every level a, so that for each a
    the share of sequences that have crossed by look k is ``spending(n_k / max, a)``.
    """
    design = Design(looks, spending)
    n = np.asarray(design.looks, dtype=float)
    rng = np.random.default_rng(_SIM_SEED)
    z = rng.standard_normal((n_sims, design.max))
    idx = np.asarray(design.looks) - 1
    total, squares = np.cumsum(z, axis=1)[:, idx], np.cumsum(z * z, axis=1)[:, idx]
    mean = total / n
    sd = np.sqrt(np.maximum(squares - n * mean**2, 0.0) / (n - 1))
    p = stats.t.sf(mean / (sd / np.sqrt(n)), n - 1)  # each look's fixed-n one-sided p, (n_sims, K)
    out = np.zeros((_LEVELS.size, n.size))
    for i, a in enumerate(_LEVELS):
        spent = SPENDING[spending](n / design.max, a)
        alive = np.ones(n_sims, dtype=bool)
        crossed = 0
        for k in range(n.size):
            extra = int(math.floor(spent[k] * n_sims + 1e-9)) - crossed
            values = p[alive, k]
            if extra <= 0 or values.size == 0:
                continue  # nothing to spend here: this look cannot reject at level a
            threshold = 1.0 if extra >= values.size else float(np.partition(values, extra)[extra])
            out[i, k] = threshold
            hit = alive & (p[:, k] < threshold)
            crossed += int(hit.sum())
            alive &= ~hit
    return np.maximum.accumulate(out, axis=0)  # a larger level never rejects less


def repeated_p(p: np.ndarray, look: int, design: Design) -> np.ndarray:
    """Return the repeated p-value of fixed-n one-sided p-values ``p`` (any shape) at look index ``look``.

    q is the smallest overall level at which the group-sequential test rejects at this look
    (1 when it would not reject at 0.5); NaN stays NaN.
    """
    nu = nominal_levels(design.looks, design.spending)[:, look]
    keep = nu > 0
    p = np.asarray(p, dtype=float)
    if not keep.any():
        return np.where(np.isfinite(p), 1.0, np.nan)
    xs = np.log(nu[keep]) + np.arange(keep.sum()) * 1e-12  # strictly increasing for interp
    ys = np.log(_LEVELS[keep])
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(np.clip(p, 1e-300, 1.0))
    q = np.exp(np.interp(logp, xs, ys, left=ys[0], right=0.0))
    q = np.where(logp >= xs[-1], 1.0, q)  # not even at the largest tabulated level
    return np.where(np.isfinite(p), q, np.nan)


def _components(kind: str, estimate: np.ndarray, se: np.ndarray, dof: np.ndarray, m: float) -> dict[str, np.ndarray]:
    """Return the fixed-n one-sided p of each component test of a rule: ``above:b`` (D > b) / ``below:b``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        def above(b: float) -> np.ndarray:
            return np.asarray(stats.t.sf((estimate - b) / se, dof))

        def below(b: float) -> np.ndarray:
            return np.asarray(stats.t.cdf((estimate - b) / se, dof))

        if kind == "no_change":
            return {"above-m": above(-m), "below+m": below(m), "above+m": above(m), "below-m": below(-m)}
        if kind in ("helps", "no_gain"):
            return {"above+m": above(m), "below+m": below(m)}
        if kind == "not_worse":
            return {"above-m": above(-m), "below-m": below(-m)}
    raise AnalysisError(f"kind {kind!r} has no sequential rule")


def _rule(kind: str, q: Mapping[str, np.ndarray]) -> Shown:
    """Return the kind's Shown from the repeated p of its components (the fixed rules, on q)."""
    if kind == "no_change":
        return Shown(np.maximum(q["above-m"], q["below+m"]),
                     np.minimum(2 * np.minimum(q["above+m"], q["below-m"]), 1.0))
    if kind == "helps":
        return Shown(q["above+m"], q["below+m"])
    if kind == "no_gain":
        return Shown(q["below+m"], q["above+m"])
    return Shown(q["above-m"], q["below-m"])  # not_worse


def sequential_shown(kind: str, d: np.ndarray, design: Design, margin: float,
                     alpha: float = 0.05) -> tuple[list[Shown], list[Shown]]:
    """Return, per look, the sequential Shown of a contrast rule and its futility projection.

    ``d``: oriented per-seed differences ``(..., max)`` in seed order (NaN: a seed without both
    sides). At look k the first ``looks[k]`` seeds count; each component's repeated p is the
    minimum over the looks so far (a crossing stays crossed), updated only at looks that brought
    new seeds. Fewer than 3 seeds, zero variance or an infinite difference give no p (NaN). The
    projection assumes the observed mean and SD continue to ``max`` seeds and reads the last
    look's boundary: the "current trend" rule (Jennison & Turnbull 2000, sec. 10.6). The verdicts
    never read the projection (futility is non-binding), so it changes costs, not error rates.
    """
    d = np.asarray(d, dtype=float)
    running: dict[str, np.ndarray] = {}
    projected_q: dict[str, np.ndarray] = {}
    looks, projections = [], []
    last = len(design.looks) - 1
    n_prev = np.zeros(d.shape[:-1])
    for k, n in enumerate(design.looks):
        window = d[..., :n]
        s = paired_stats(window)
        with np.errstate(invalid="ignore"):
            usable = (s.n >= 3) & (s.se > 1e-12 * np.maximum(1.0, np.abs(s.estimate))) & \
                np.all(~np.isinf(window), axis=-1)
        new = usable & (s.n > n_prev)
        n_prev = np.where(new, s.n, n_prev)
        q = {name: repeated_p(np.where(usable, p, np.nan), k, design)
             for name, p in _components(kind, s.estimate, s.se, s.df, margin).items()}
        with np.errstate(invalid="ignore", divide="ignore"):
            se_max = s.se * np.sqrt(s.n) / math.sqrt(design.max)
        projected = _components(kind, s.estimate, se_max, np.full(np.shape(s.n), design.max - 1.0), margin)
        for name in q:
            ahead = repeated_p(np.where(usable, projected[name], np.nan), last, design)
            if name in running:
                running[name] = np.where(new, np.fmin(running[name], q[name]), running[name])
                projected_q[name] = np.where(new, ahead, projected_q[name])
            else:
                running[name] = np.where(new, q[name], np.nan)
                projected_q[name] = np.where(new, ahead, np.nan)
        looks.append(_rule(kind, running))
        projections.append(_rule(kind, projected_q))
    return looks, projections


def _verdicts(seq: Sequence[Shown], alpha: float) -> tuple[list[str], int | None]:
    """Return the verdict after each look (frozen at the first decision) and that look's index."""
    out: list[str] = []
    decided: int | None = None
    for k, p in enumerate(seq):
        now = str(verdict_of(p, alpha))
        if decided is None and now in (SUPPORTED, CONTRADICTED):
            decided = k
        out.append(out[decided] if decided is not None and k > decided else now)
    return out, decided


@dataclass(frozen=True)
class _Unit:
    """One hypothesis's sequential evidence on one (task, level): Shown per look, projections, and notes."""

    task: str
    level: str
    reference: str
    n: list[int]
    looks: list[Shown]
    projections: list[Shown]
    note: str


def _series_at(series: pd.Series, seeds: Sequence[int]) -> np.ndarray:
    """Return ``series`` (indexed by seed) over ``seeds`` in order, NaN where a seed is missing."""
    return series.reindex(list(seeds)).to_numpy(float)


def _units(h: Hypothesis, df: pd.DataFrame, scale: Scale, seeds: Sequence[int], design: Design,
           baselines: pd.DataFrame | None, alpha: float) -> tuple[list[tuple[str, list[list[_Unit]]]], str]:
    """Return per task, per level, the list of units (one, or one per baseline with ``best_baseline``)."""
    tasks, why = task_list(df, h)
    out = []
    reference = h.members(h.reference) if h.reference != BEST_BASELINE else ()
    for task in tasks:
        part = df[df["task"].astype(str) == task]
        per_level = []
        for level in h.level:
            series: list[tuple[str, pd.Series, str]] = []
            if h.reference == BEST_BASELINE:
                pool = baselines if baselines is not None else pd.DataFrame()
                mine = pool[pool["task"].astype(str) == task] if not pool.empty else pool
                for name, group in (mine.groupby(contract.BASELINE, sort=False) if not mine.empty else []):
                    d, note = baseline_per_seed(part, h.factor, h.members(level), group, "_y", scale)
                    series.append((f"baseline {name}", d, note))
            else:
                d, note = matched_per_seed(part, h.factor, h.members(level), reference, "_y", scale)
                series.append((h.reference, d, note))
            units = []
            for ref, d, note in series:
                values = _series_at(d, seeds[: design.max])
                bad = degenerate_note(values[: design.looks[0]]) if not note.startswith(NOT_ENOUGH_DATA) else note
                looks, projections = sequential_shown(h.kind, values, design, scale.margin, alpha)
                n = [int(np.isfinite(values[:k]).sum()) for k in design.looks]
                if bad.startswith(NOT_ENOUGH_DATA):
                    nan = Shown(np.asarray(np.nan), np.asarray(np.nan))
                    looks, projections = [nan] * len(looks), [nan] * len(looks)
                units.append(_Unit(task, level, ref, n, looks, projections, note))
            per_level.append(units)
        out.append((task, per_level))
    return out, why


def _stack(parts: Sequence[Shown]) -> Shown:
    return Shown(np.array([float(p.support) for p in parts]), np.array([float(p.contra) for p in parts]))


def _combine(h: Hypothesis, tasks: list[tuple[str, list[list[_Unit]]]], k: int, projected: bool) -> Shown:
    """Return the hypothesis's Shown at look k: baselines (IUT), then levels, then tasks, as the fixed rules do."""
    per_task = []
    for _, per_level in tasks:
        level_p = [across_all(_stack([(u.projections if projected else u.looks)[k] for u in units]))
                   if units else Shown(np.asarray(np.nan), np.asarray(np.nan)) for units in per_level]
        stacked = _stack(level_p)
        per_task.append(levels_some(stacked) if h.levels == "some" else across_all(stacked))
    if not per_task:
        return Shown(np.asarray(np.nan), np.asarray(np.nan))
    stacked = _stack(per_task)
    return across_all(stacked) if h.across == "all" else across_k(stacked, int(h.across))


def sequential_tests(df: pd.DataFrame, design: Design, seeds: Sequence[int], *,
                     settings: AnalysisSettings | None = None, hypotheses: list[Hypothesis] | None = None,
                     y: str = contract.TEST_SCORE, baselines: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return the sequential verdict rows of every declared hypothesis: one per look, then a summary.

    Input: the tidy trials frame (as for :func:`analysis.hypothesis_tests`) and the study's declared
    ``seeds`` in the order they open (look k uses the first ``design.looks[k]``). Looks beyond the
    seeds the data has are left out. Rows: ``test = sequential``; per look ``variant = look`` with
    ``n`` (seeds at the look), ``df`` (the look number, 1-based), the repeated p of support and
    contradiction, the verdict so far (frozen at the first decision) and ``note`` ``futile`` when it
    cannot be decided by ``max``; then ``variant = summary`` (``task = all``) with the final
    verdict, the deciding look in ``df`` and the note saying whether the hypothesis is still open.
    """
    spec: Mapping[str, Any] = df.attrs.get("spec") or {}
    settings = settings or read_settings(spec)
    hypotheses = read_hypotheses(spec) if hypotheses is None else hypotheses
    data, _ = one_per_cell(df)
    data = data.assign(_y=data[y])
    data.attrs = dict(df.attrs)
    scale = score_scale(data, settings.margin)
    alpha = settings.alpha
    present = set(pd.to_numeric(data["seed"], errors="coerce").dropna().astype(int))
    last_look = max((k for k, n in enumerate(design.looks)
                     if present & set(seeds[(design.looks[k - 1] if k else 0):n])), default=-1)
    results: dict[str, tuple[list[str], int | None, bool]] = {}
    rows: list[dict[str, Any]] = []
    for h in sorted(hypotheses, key=lambda h: bool(h.all_of)):
        base = {"test": SEQUENTIAL, "hypothesis": h.id, "kind": h.kind or "all_of", "y": y, "margin": scale.margin,
                "family": f"hypothesis {h.id}", "confidence": 1 - alpha, "method": f"group-sequential, "
                f"{design.spending} alpha spending, looks at {', '.join(map(str, design.looks))} seeds"}
        if h.kind in ("predicts", "no_prediction"):
            rows.append(make_row(**base, task="all", variant=SUMMARY, verdict=NOT_EVALUATED,
                                 note="a correlation's units are configurations, not seeds: evaluated once, by the "
                                      "fixed rules, at the last look; it does not keep seeds open"))
            results[h.id] = ([NOT_EVALUATED] * (last_look + 1), None, False)
            continue
        if h.all_of:
            parts = [results[p] for p in h.all_of if p in results]
            verdicts, decided, still = _all_of_verdicts(parts, last_look)
            results[h.id] = (verdicts, decided, still)
            rows.append(_summary(base, verdicts, decided, still, design, note=f"all of {', '.join(h.all_of)}"))
            continue
        if h.factor not in data.columns:
            rows.append(make_row(**base, task="all", variant=SUMMARY, verdict=NOT_EVALUATED,
                                 note=f"the study does not vary {h.factor}"))
            results[h.id] = ([NOT_EVALUATED] * (last_look + 1), None, False)
            continue
        tasks, why = _units(h, data, scale, seeds, design, baselines, alpha)
        seq = [_combine(h, tasks, k, projected=False) for k in range(last_look + 1)]
        proj = [_combine(h, tasks, k, projected=True) for k in range(last_look + 1)]
        verdicts, decided = _verdicts(seq, alpha)
        # Futile: not decidable by max at the current trend; not before the second look (an SD from
        # `start` seeds alone is too rough to give up on).
        futile = [k >= 1 and bool(str(verdict_of(p, alpha)) not in (SUPPORTED, CONTRADICTED))
                  for k, p in enumerate(proj)]
        n_at = [min((u.n[k] for _, lv in tasks for units in lv for u in units), default=0)
                for k in range(last_look + 1)]
        for k in range(last_look + 1):
            rows.append(make_row(**base, task="all", variant="look", df=k + 1, n=n_at[k],
                                 p_support=float(seq[k].support), p_contra=float(seq[k].contra),
                                 verdict=verdicts[k], note=FUTILE if futile[k] and decided is None else ""))
        still = decided is None and last_look < len(design.looks) - 1 and not (futile[last_look] if futile else True)
        if not tasks:
            verdicts, still = [NOT_EVALUATED] * (last_look + 1), False
        results[h.id] = (verdicts, decided, still)
        rows.append(_summary(base, verdicts, decided, still, design, note=why, n=n_at[-1] if n_at else 0))
    order = {h.id: i for i, h in enumerate(hypotheses)}
    rows.sort(key=lambda r: (order[r["hypothesis"]], r["variant"] != SUMMARY))
    return results_frame(rows)


def _all_of_verdicts(parts: list[tuple[list[str], int | None, bool]], last: int) -> tuple[list[str], int | None, bool]:
    """A conjunction: supported once every part is, contradicted once any part is; open while a part is."""
    verdicts = []
    for k in range(last + 1):
        now = [p[0][k] if k < len(p[0]) else NOT_EVALUATED for p in parts]
        if any(v == CONTRADICTED for v in now):
            verdicts.append(CONTRADICTED)
        elif now and all(v == SUPPORTED for v in now):
            verdicts.append(SUPPORTED)
        elif any(v == NOT_EVALUATED for v in now):
            verdicts.append(NOT_EVALUATED)
        else:
            verdicts.append(INCONCLUSIVE)
    decided = next((k for k, v in enumerate(verdicts) if v in (SUPPORTED, CONTRADICTED)), None)
    return verdicts, decided, decided is None and any(p[2] for p in parts)


def _summary(base: dict[str, Any], verdicts: list[str], decided: int | None, still: bool, design: Design,
             note: str = "", n: int | None = None) -> dict[str, Any]:
    final = verdicts[-1] if verdicts else NOT_EVALUATED
    if decided is not None:
        when = f"decided at look {decided + 1} ({design.looks[decided]} seeds)"
    elif still:
        when = f"{OPEN}: more seeds may decide it"
    elif verdicts and len(verdicts) < len(design.looks):
        when = "futile: it cannot be decided by the last look at the observed variance; stopped adding seeds"
    else:
        when = "undecided at the last look"
    return make_row(**base, task="all", variant=SUMMARY, df=(decided + 1) if decided is not None else None,
                    n=n, verdict=final,
                    note="; ".join(filter(None, [when, note])))


def still_open(note: str) -> bool:
    """Return whether a sequential summary row's ``note`` says the hypothesis still asks for seeds."""
    return str(note).startswith(OPEN)


def needed_levels(h: Hypothesis) -> tuple[str, ...] | None:
    """Return the levels (text) of ``h.factor`` whose cells a contrast hypothesis reads; None: every cell."""
    if not h.factor:
        return None
    levels = [m for lv in h.level for m in h.members(lv)]
    if h.reference != BEST_BASELINE:
        levels += list(h.members(h.reference))
    return tuple(dict.fromkeys(level_text(v) for v in levels))
