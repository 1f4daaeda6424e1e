"""Group-sequential verdicts (adaptive seeds): error rates at every kind's boundary null, by simulation.

Seeded, vectorised simulations of 2,000 studies per rule call the same function the report uses
(:func:`analysis._sequential.sequential_shown`); the wrong-verdict rate of the frozen verdict must stay
at or below alpha + 2 Monte-Carlo standard errors, and each rule must have power at a stated alternative.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis._rules import CONTRADICTED, SUPPORTED, verdict_of
from analysis._sequential import SPENDING, Design, look_schedule, nominal_levels, repeated_p, sequential_shown, \
    sequential_tests
from analysis._spec import Hypothesis

ALPHA, M, SD, REPS = 0.05, 0.01, 0.01, 2000
LIMIT = ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / REPS)
DESIGN = Design(look_schedule(3, 2, 20))


def frozen(kind: str, true: float, seed: int, design: Design = DESIGN) -> tuple[np.ndarray, np.ndarray]:
    """Return the frozen verdict of each simulated study and the look (index) that decided it (-1: none)."""
    d = np.random.default_rng(seed).normal(true, SD, (REPS, design.max))
    looks, _ = sequential_shown(kind, d, design, M, ALPHA)
    v = np.stack([verdict_of(p, ALPHA) for p in looks])  # (looks, REPS)
    decided = np.isin(v, [SUPPORTED, CONTRADICTED])
    first = np.where(decided.any(axis=0), decided.argmax(axis=0), -1)
    verdict = np.where(first >= 0, v[np.maximum(first, 0), np.arange(REPS)], "inconclusive")
    return verdict, first


def rate(verdict: np.ndarray, which: str) -> float:
    return float(np.mean(verdict == which))


# kind, true difference where "supported" is wrong, where "contradicted" is wrong, an alternative for power
CASES = [
    ("helps", M, M, 3 * M),
    ("no_gain", M, M, -2 * M),
    ("not_worse", -M, -M, M),
    ("no_change", M, 0.0, 0.0),
]


@pytest.mark.parametrize("kind, support_null, contra_null, alternative", CASES)
def test_sequential_rule_holds_alpha_at_the_boundary_and_has_power(kind: str, support_null: float,
                                                                   contra_null: float, alternative: float) -> None:
    wrong_support = rate(frozen(kind, support_null, seed=1)[0], SUPPORTED)
    power_verdict, first = frozen(kind, alternative, seed=3)
    power = rate(power_verdict, SUPPORTED)
    print(f"\nsequential {kind}: wrong supported at D = {support_null:+.2f}: {wrong_support:.4f} "
          f"(limit {LIMIT:.4f}); supported at D = {alternative:+.2f}: {power:.3f}, mean seeds at the decision "
          f"{np.mean([DESIGN.looks[k] for k in first[first >= 0]]):.1f}")
    assert wrong_support <= LIMIT
    assert power >= 0.8
    if kind != "no_change":  # no_change contradicts beyond the margin only, at alpha / 2 a side (below)
        wrong_contra = rate(frozen(kind, contra_null, seed=2)[0], CONTRADICTED)
        print(f"sequential {kind}: wrong contradicted at D = {contra_null:+.2f}: {wrong_contra:.4f}")
        assert wrong_contra <= LIMIT


def test_no_change_contradiction_holds_alpha_beyond_the_margin() -> None:
    for true, seed in ((M, 4), (-M, 5)):
        wrong = rate(frozen("no_change", true, seed)[0], CONTRADICTED)
        print(f"\nsequential no_change: wrong contradicted at D = {true:+.2f}: {wrong:.4f}")
        assert wrong <= LIMIT


def test_obrien_fleming_spending_holds_alpha_and_spends_late() -> None:
    obf = Design(DESIGN.looks, "obf")
    wrong, first = frozen("helps", M, seed=6, design=obf)
    assert rate(wrong, SUPPORTED) <= LIMIT
    _, early = frozen("helps", 3 * M, seed=7, design=obf)
    _, early_pocock = frozen("helps", 3 * M, seed=7)
    assert np.mean(early == 0) < np.mean(early_pocock == 0)  # OBF almost never stops at the first look


def test_boundaries_spend_alpha_as_the_spending_function_says() -> None:
    nu = nominal_levels(DESIGN.looks, "pocock")
    levels = np.geomspace(1e-6, 0.5, nu.shape[0])
    i = int(np.argmin(abs(levels - ALPHA)))
    rng = np.random.default_rng(99)  # fresh sequences, not the ones the boundaries came from
    z = rng.standard_normal((50_000, DESIGN.max))
    from scipy import stats
    crossed = np.zeros(len(z), dtype=bool)
    for k, n in enumerate(DESIGN.looks):
        x = z[:, :n]
        p = stats.t.sf(x.mean(1) / (x.std(1, ddof=1) / np.sqrt(n)), n - 1)
        crossed |= p < nu[i, k]
        spent = SPENDING["pocock"](np.array(n / DESIGN.max), levels[i])
        assert abs(crossed.mean() - spent) < 4 * np.sqrt(spent * (1 - spent) / len(z)) + 1e-3


def test_repeated_p_is_monotone_and_one_when_never_shown() -> None:
    p = np.array([1e-8, 1e-4, 1e-3, 0.01, 0.2, 0.9, np.nan])
    q = repeated_p(p, 3, DESIGN)
    assert np.all(np.diff(q[:-1]) >= 0) and q[5] == 1.0 and np.isnan(q[6])


def test_degenerate_differences_are_never_a_verdict() -> None:
    d = np.full((1, DESIGN.max), 0.02)  # the same difference on every seed: no t bound
    looks, _ = sequential_shown("helps", d, DESIGN, M)
    assert all(not np.isfinite(p.support).any() for p in looks)


def _frame(diff: float, seeds: int, sd: float = 0.004) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"trial": i, "task": "t", "seed": s, "f": lv, "test_score": 0.8 + (diff if lv == "b" else 0.0)
             + rng.normal(0, sd)} for i, (s, lv) in enumerate((s, lv) for s in range(seeds) for lv in ("a", "b"))]
    df = pd.DataFrame(rows)
    df.attrs["factors"] = ["f"]
    return df


def test_a_large_effect_is_decided_at_the_first_look_and_frozen() -> None:
    h = Hypothesis("b-helps", kind="helps", factor="f", level=("b",), reference="a")
    rows = sequential_tests(_frame(0.06, 7), DESIGN, list(range(20)), hypotheses=[h])
    summary = rows[rows["variant"] == "summary"].iloc[0]
    assert summary["verdict"] == SUPPORTED and summary["df"] == 1 and summary["note"].startswith("decided at look 1")
    assert list(rows.loc[rows["variant"] == "look", "verdict"]) == [SUPPORTED] * 3  # frozen


def test_a_hopeless_equivalence_is_futile_and_stops_asking_for_seeds() -> None:
    h = Hypothesis("same", kind="no_change", factor="f", level=("b",), reference="a")
    first = sequential_tests(_frame(0.0, 3, sd=0.2), DESIGN, list(range(20)), hypotheses=[h])
    assert first[first["variant"] == "summary"].iloc[0]["note"].startswith("open")  # never at the first look
    rows = sequential_tests(_frame(0.0, 5, sd=0.2), DESIGN, list(range(20)), hypotheses=[h])
    summary = rows[rows["variant"] == "summary"].iloc[0]
    assert summary["note"].startswith("futile") and summary["verdict"] == "inconclusive"
    small = sequential_tests(_frame(0.0, 5, sd=0.004), DESIGN, list(range(20)), hypotheses=[h])
    assert small[small["variant"] == "summary"].iloc[0]["note"].startswith(("open", "decided"))
