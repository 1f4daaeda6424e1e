"""Calibration of every verdict rule by simulation: wrong verdicts at the boundary null, CI coverage, power.

Each test draws REPS replicates of per-seed differences from a fixed seed and calls the rule
functions of ``analysis._rules`` on the whole batch. A wrong-verdict rate must be at most
alpha + 2 Monte-Carlo standard errors, coverage at least 1 - alpha - 2 s.e., and power at the
stated alternative must be real (a rule that can never reject fails). The measured rates are
printed (``pytest -s``) and quoted in the issue's closing note.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analysis._power import rule_power
from analysis._rules import (
    CONTRADICTED,
    SUPPORTED,
    Shown,
    across_all,
    across_k,
    correlation_shown,
    levels_some,
    paired_stats,
    shown,
    verdict_of,
)

REPS = 4000
ALPHA = 0.05
M = 0.01  # margin
SD = 0.01  # SD of per-seed differences
N = 8  # seeds
MC_SE = math.sqrt(ALPHA * (1 - ALPHA) / REPS)
LIMIT = ALPHA + 2 * MC_SE


def draw(delta: float | np.ndarray, n: int = N, *, seed: int, tasks: int | None = None) -> np.ndarray:
    shape = (REPS, n) if tasks is None else (REPS, tasks, n)
    d = np.random.default_rng(seed).normal(0.0, SD, size=shape)
    return d + (np.asarray(delta)[..., None] if np.ndim(delta) else delta)


def rate(verdicts: np.ndarray, which: str) -> float:
    return float(np.mean(verdicts == which))


# (kind, boundary of wrong "supported", boundary of wrong "contradicted", alternative where it should hold, power floor)
BOUNDARIES = [
    ("no_change", M, M, 0.0, 0.6),
    ("no_change", -M, -M, 0.0, 0.6),
    ("no_gain", M, M, 0.0, 0.75),
    ("not_worse", -M, -M, 0.0, 0.75),
    ("helps", M, M, 2 * M, 0.75),
]


@pytest.mark.parametrize(("kind", "support_null", "contra_null", "alternative", "floor"), BOUNDARIES,
                         ids=[f"{b[0]}@{b[1]:+g}" for b in BOUNDARIES])
def test_rule_holds_alpha_at_the_boundary_and_has_power(kind: str, support_null: float, contra_null: float,
                                                        alternative: float, floor: float) -> None:
    wrong_support = rate(verdict_of(shown(kind, paired_stats(draw(support_null, seed=1)), M), ALPHA), SUPPORTED)
    wrong_contra = rate(verdict_of(shown(kind, paired_stats(draw(contra_null, seed=2)), M), ALPHA), CONTRADICTED)
    power = rate(verdict_of(shown(kind, paired_stats(draw(alternative, seed=3)), M), ALPHA), SUPPORTED)
    print(f"\n{kind} n={N}: wrong supported {wrong_support:.4f} (at D={support_null:+g}), wrong contradicted "
          f"{wrong_contra:.4f} (at D={contra_null:+g}), power {power:.3f} (at D={alternative:+g}); limit {LIMIT:.4f}")
    assert wrong_support <= LIMIT and wrong_contra <= LIMIT
    assert power >= floor
    predicted = float(rule_power(kind, np.array([N]), SD, M, ALPHA)[0])  # item 7: the power the report quotes
    assert abs(power - predicted) <= 4 * math.sqrt(predicted * (1 - predicted) / REPS) + 0.01


def test_contradicted_side_of_helps_has_power() -> None:
    # A rule that can never contradict is as wrong as one that always does.
    power = rate(verdict_of(shown("helps", paired_stats(draw(-M, seed=4)), M), ALPHA), CONTRADICTED)
    print(f"\nhelps: contradicted at D=-m with n={N}: {power:.3f}")
    assert power >= 0.9


def test_ci_covers_the_true_difference() -> None:
    for delta, n in ((0.0, 3), (M, N), (-2 * M, 20)):
        s = paired_stats(draw(delta, n, seed=5))
        lo, hi = s.ci(ALPHA)
        coverage = float(np.mean((lo <= delta) & (delta <= hi)))
        print(f"\nCI coverage at D={delta:+g}, n={n}: {coverage:.4f}")
        assert coverage >= 1 - ALPHA - 2 * MC_SE


def test_across_all_tasks_intersection_union_and_holm() -> None:
    # Support: every task at the boundary of helps -> wrong support at most alpha (IUT).
    p = shown("helps", paired_stats(draw(np.array([M, M, M]), seed=6, tasks=3)), M)
    wrong = rate(verdict_of(across_all(p), ALPHA), SUPPORTED)
    # The least favourable IUT configuration: one task at the boundary, the others far beyond it.
    p = shown("helps", paired_stats(draw(np.array([M, 10 * M, 10 * M]), seed=7, tasks=3)), M)
    wrong_lfc = rate(verdict_of(across_all(p), ALPHA), SUPPORTED)
    # Contradiction: the null is true in every task (D = m) -> Holm keeps the family-wise rate.
    p = shown("helps", paired_stats(draw(np.array([M, M, M]), seed=8, tasks=3)), M)
    wrong_contra = rate(verdict_of(across_all(p), ALPHA), CONTRADICTED)
    p = shown("helps", paired_stats(draw(np.array([2 * M, 2 * M, 2 * M]), seed=9, tasks=3)), M)
    power = rate(verdict_of(across_all(p), ALPHA), SUPPORTED)
    print(f"\nacross: all (3 tasks): wrong supported {wrong:.4f} (all at boundary), {wrong_lfc:.4f} (one at "
          f"boundary), wrong contradicted {wrong_contra:.4f}, power {power:.3f} at D=2m")
    assert max(wrong, wrong_lfc, wrong_contra) <= LIMIT and power >= 0.5


def test_across_k_partial_conjunction() -> None:
    # k = 2 of 3: only one task truly shows it (the others at the boundary) -> wrong support <= alpha.
    p = shown("helps", paired_stats(draw(np.array([10 * M, M, M]), seed=10, tasks=3)), M)
    wrong = rate(verdict_of(across_k(p, 2), ALPHA), SUPPORTED)
    p = shown("helps", paired_stats(draw(np.array([-10 * M, M, M]), seed=11, tasks=3)), M)
    wrong_contra = rate(verdict_of(across_k(p, 2), ALPHA), CONTRADICTED)
    p = shown("helps", paired_stats(draw(np.array([3 * M, 3 * M, M]), seed=12, tasks=3)), M)
    power = rate(verdict_of(across_k(p, 2), ALPHA), SUPPORTED)
    print(f"\nacross: 2 of 3: wrong supported {wrong:.4f}, wrong contradicted {wrong_contra:.4f}, "
          f"power {power:.3f} (two tasks at D=3m)")
    assert wrong <= LIMIT and wrong_contra <= LIMIT and power >= 0.8


def test_levels_some_holm_over_levels() -> None:
    p = shown("helps", paired_stats(draw(np.array([M, M, M]), seed=13, tasks=3)), M)
    wrong = rate(verdict_of(levels_some(p), ALPHA), SUPPORTED)
    p = shown("helps", paired_stats(draw(np.array([M, M, M]), seed=14, tasks=3)), M)
    wrong_contra = rate(verdict_of(levels_some(p), ALPHA), CONTRADICTED)
    p = shown("helps", paired_stats(draw(np.array([0.0, 0.0, 3 * M]), seed=15, tasks=3)), M)
    power = rate(verdict_of(levels_some(p), ALPHA), SUPPORTED)
    print(f"\nlevels: some (3 levels): wrong supported {wrong:.4f}, wrong contradicted {wrong_contra:.4f}, "
          f"power {power:.3f} (one level at D=3m)")
    assert wrong <= LIMIT and wrong_contra <= LIMIT and power >= 0.8


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rx, ry = stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1)
    rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
    return (rx * ry).sum(-1) / np.sqrt((rx**2).sum(-1) * (ry**2).sum(-1))


def _configs(rho_s: float, n: int, seed: int) -> np.ndarray:
    r = 2 * math.sin(math.pi * rho_s / 6)  # the Pearson r of a bivariate normal with Spearman rho_s
    z = np.random.default_rng(seed).normal(size=(REPS, n, 2))
    x, y = z[..., 0], r * z[..., 0] + math.sqrt(1 - r * r) * z[..., 1]
    return _spearman_rows(x, y)


@pytest.mark.parametrize("n", [12, 30])
def test_correlation_rules_at_rho_weak(n: int) -> None:
    weak = 0.3
    rho = _configs(weak, n, seed=20 + n)
    wrong_np = rate(verdict_of(correlation_shown("no_prediction", rho, np.full(REPS, n), weak), ALPHA), SUPPORTED)
    wrong_p = rate(verdict_of(correlation_shown("predicts", rho, np.full(REPS, n), weak), ALPHA), SUPPORTED)
    power = rate(verdict_of(correlation_shown("no_prediction", _configs(-0.4, n, seed=40 + n), np.full(REPS, n),
                                              weak), ALPHA), SUPPORTED)
    print(f"\ncorrelation, {n} configurations: wrong supported at rho=rho_weak: no_prediction {wrong_np:.4f}, "
          f"predicts {wrong_p:.4f}; power of no_prediction at rho=-0.4: {power:.3f}")
    assert wrong_np <= LIMIT and wrong_p <= LIMIT
    assert power >= (0.5 if n == 12 else 0.95)


def test_all_nan_units_are_not_evaluated() -> None:
    out = verdict_of(across_all(Shown(np.full((2, 3), np.nan), np.full((2, 3), np.nan))), ALPHA)
    assert list(out) == ["not evaluated", "not evaluated"]


# Item 6: the blocked (repeated-measures) F test of a factor, seeds as blocks.
F_SEEDS, F_LEVELS = 5, 3
SEED_SD = 0.05  # seed effects (split, initialisation) five times the noise: blocks matter


def _layout(level_effects: np.ndarray, *, seed: int, others: int = 1, interaction: float = 0.0,
            noise: float = SD) -> np.ndarray:
    """Return REPS layouts (REPS, seeds, levels, other-factor levels) with seed effects and optional
    random level × seed interaction (each seed's own level effects, mean zero)."""
    rng = np.random.default_rng(seed)
    shape = (REPS, F_SEEDS, F_LEVELS, others)
    y = 0.7 + rng.normal(0.0, SEED_SD, (REPS, F_SEEDS, 1, 1)) + np.asarray(level_effects)[:, None]
    y = y + np.linspace(0.0, 0.02, others) + rng.normal(0.0, SEED_SD, (REPS, F_SEEDS, 1, others))  # other factor
    y = y + rng.normal(0.0, interaction, (REPS, F_SEEDS, F_LEVELS, 1)) if interaction else y
    return y + rng.normal(0.0, noise, shape)


def test_blocked_f_holds_alpha_with_seed_effects_and_has_power() -> None:
    from analysis._factors import blocked_f

    size = float(np.mean(blocked_f(_layout(np.zeros(F_LEVELS), seed=50).mean(-1))["p"] < ALPHA))
    alternative = np.array([0.0, M, 2 * M])  # level effects 0, m, 2m with noise SD m
    power = float(np.mean(blocked_f(_layout(alternative, seed=51).mean(-1))["p"] < ALPHA))
    df1, df2 = F_LEVELS - 1, (F_LEVELS - 1) * (F_SEEDS - 1)
    lam = F_SEEDS * float(np.sum((alternative - alternative.mean()) ** 2)) / SD**2
    predicted = float(stats.ncf.sf(stats.f.isf(ALPHA, df1, df2), df1, df2, lam))  # noncentral F power
    print(f"\nblocked F, {F_SEEDS} seeds x {F_LEVELS} levels, df ({df1}, {df2}), {REPS} replicates: size {size:.4f} "
          f"(limit {LIMIT:.4f}); power {power:.3f} at level effects (0, m, 2m), noise SD m "
          f"(noncentral F: {predicted:.3f}, lambda {lam:g})")
    assert size <= LIMIT
    assert power >= 0.5 and abs(power - predicted) <= 4 * math.sqrt(predicted * (1 - predicted) / REPS)


def test_blocked_f_averages_other_factors_within_seed() -> None:
    # The design choice: the other factor's levels are averaged within (seed, level). Each seed has its own
    # level effects (random level x seed interaction, mean zero: the null is true). Averaging keeps alpha;
    # treating each (seed, other level) as an additional block pseudo-replicates the seed and over-rejects.
    from analysis._factors import blocked_f

    y = _layout(np.zeros(F_LEVELS), seed=52, others=3, interaction=SD, noise=SD / 2)
    averaged = float(np.mean(blocked_f(y.mean(-1))["p"] < ALPHA))
    extra_blocks = np.moveaxis(y, -1, -2).reshape(REPS, F_SEEDS * 3, F_LEVELS)
    pseudo = float(np.mean(blocked_f(extra_blocks)["p"] < ALPHA))
    print(f"\nblocked F with a random level x seed interaction, 3 levels of another factor: size {averaged:.4f} "
          f"(other factor averaged within seed) vs {pseudo:.4f} ((seed, other level) as extra blocks)")
    assert averaged <= LIMIT and pseudo > LIMIT
