"""Seeds needed for 80% power, pinned to statsmodels' paired t power."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from analysis_synthetic import trials_frame
from statsmodels.stats.power import TTestPower

from analysis import seeds_needed


def paired_frame(diffs: list[float]) -> pd.DataFrame:
    rows = []
    for seed, d in enumerate(diffs):
        rows += [{"task": "a", "seed": seed, "f": "ref", "test_score": 0.7 + 0.01 * seed},
                 {"task": "a", "seed": seed, "f": "new", "test_score": 0.7 + 0.01 * seed + d}]
    df = pd.DataFrame(rows)
    df.attrs["factors"] = ["f"]
    return df


def test_seeds_needed_matches_ttestpower() -> None:
    diffs = [0.01, 0.03, -0.005, 0.02, 0.0, 0.015]
    row = seeds_needed(paired_frame(diffs), "f", reference="ref").iloc[0]
    d = np.array(diffs)
    d_z = d.mean() / d.std(ddof=1)
    # Reference: TTestPower().solve_power(effect_size=d_z, alpha=0.05, power=0.8)
    expected = math.ceil(TTestPower().solve_power(effect_size=d_z, alpha=0.05, power=0.8))
    np.testing.assert_allclose(row["effect_size"], d_z)
    assert row["effect_type"] == "d_z" and row["n"] == 6 and row["n_needed"] == expected
    assert bool(row["underpowered"]) is (6 < expected)
    assert row["test"] == "power" and row["power"] == 0.8


def test_large_effect_needs_few_seeds_and_is_not_underpowered() -> None:
    row = seeds_needed(paired_frame([0.05, 0.06, 0.055, 0.05, 0.052]), "f", reference="ref").iloc[0]
    assert row["n_needed"] <= 3 and not bool(row["underpowered"])


def test_zero_effect_is_nan_with_a_note() -> None:
    row = seeds_needed(paired_frame([0.01, -0.01, 0.02, -0.02]), "f", reference="ref").iloc[0]
    assert pd.isna(row["n_needed"]) and pd.isna(row["underpowered"]) and "zero" in row["note"]


def test_one_row_per_task_and_level() -> None:
    df = trials_frame(tasks=("a", "b"), factors={"embedder.proxy": ["cifar", "fake", "vocab"]}, noise=0.01)
    out = seeds_needed(df, "embedder.proxy")
    assert len(out) == 4 and set(out["reference"]) == {"cifar"}
