"""Benchmark: adaptive seeds against fixed 5-seed and fixed max-seed designs, on docs/results-like studies.

Usage: ``python bench/adaptive.py [--reps 200] [--max 20] [--seed 0]``.

Each replicate draws a study's trial scores the way a trial function would:
``mu_task + effect(task, level) + seed effect + N(0, sigma_task^2)``, with effects and SDs taken
from the paired contrasts of docs/results (5 seeds each; the SD of a per-seed difference is
sigma * sqrt 2). Two designs like the shipped specs:

- ``freezing``: finetune.freeze in none / embedder / body / layernorm-only; ``body-critical``
  (helps, trained vs frozen groups) and ``embedder-need-not-finetune`` (not_worse, embedder vs none);
  a large effect, and one near the margin;
- ``proxy``: embedder.proxy in vocab / fake; ``proxy-irrelevant`` (no_change), a null effect whose
  equivalence needs many seeds.

The adaptive design runs the engine's own logic without storage: look k takes the cells opened so
far (``analysis._sequential.sequential_tests``, the function a real look calls), and the next round
opens the next seeds for the cells an open hypothesis reads (``studies.engine._adaptive._needed``).
``adaptive-5`` is the same procedure with max 5 (looks at 3 and 5 seeds), the fair comparison with
the fixed 5-seed design at equal maximum. The fixed designs give the fixed-n verdicts (``analysis.hypothesis_tests``) on 5 and on ``max``
seeds. Printed: per design and hypothesis, how often it is decided (supported or contradicted) and
wrongly decided, and the mean number of ORCA trials. Then, from 20,000 simulated single contrasts
per kind, the wrong-verdict rate of the sequential rules at each kind's boundary null.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(_ROOT)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import hypothesis_tests  # noqa: E402
from harness import contract  # noqa: E402
from analysis._rules import CONTRADICTED, SUPPORTED, verdict_of  # noqa: E402
from analysis._sequential import SEQUENTIAL, Design, look_schedule, needed_levels, sequential_shown, \
    sequential_tests, still_open  # noqa: E402
from analysis._spec import AnalysisSettings, Hypothesis  # noqa: E402
from studies.engine._adaptive import _needed  # noqa: E402
from studies.spec import Cell  # noqa: E402

TASKS = ("digits", "ucr:Crop")


@dataclass(frozen=True)
class Scenario:
    name: str
    factor: str
    levels: tuple[str, ...]
    effects: Mapping[str, Mapping[str, float]]  # task -> level -> mean effect
    sigma: Mapping[str, float]  # task -> SD of one trial's noise
    hypotheses: tuple[Hypothesis, ...]
    truth: Mapping[str, str]  # hypothesis -> the verdict that is right ("" when neither is)


FREEZING = Scenario(
    "freezing", "finetune.freeze", ("none", "embedder", "body", "layernorm-only"),
    {"digits": {"none": 0.0, "embedder": -0.0056, "body": -0.0429, "layernorm-only": -0.0396},
     "ucr:Crop": {"none": 0.0, "embedder": -0.0268, "body": -0.0710, "layernorm-only": -0.0742}},
    {"digits": 0.0115, "ucr:Crop": 0.0150},
    (Hypothesis("body-critical", kind="helps", factor="finetune.freeze", level=("body trained",),
                reference="body frozen", groups={"body trained": ("none", "embedder"),
                                                 "body frozen": ("body", "layernorm-only")}),
     Hypothesis("embedder-need-not-finetune", kind="not_worse", factor="finetune.freeze", level=("embedder",),
                reference="none")),
    # body trained beats frozen by >= 0.035 on both tasks: supported is right. Embedder frozen: digits
    # -0.0056 (not worse than -0.01: support right there), Crop -0.027 (worse): across all, contradicted.
    {"body-critical": SUPPORTED, "embedder-need-not-finetune": CONTRADICTED},
)
PROXY = Scenario(
    "proxy", "embedder.proxy", ("vocab", "fake"),
    {"digits": {"vocab": 0.0, "fake": 0.0039}, "ucr:Crop": {"vocab": 0.0, "fake": 0.0024}},
    {"digits": 0.0099, "ucr:Crop": 0.0222},
    (Hypothesis("proxy-irrelevant", kind="no_change", factor="embedder.proxy", level=("fake",), reference="vocab"),),
    {"proxy-irrelevant": SUPPORTED},  # |effect| < 0.01 on both tasks
)


def draw(s: Scenario, rng: np.random.Generator, seeds: int) -> pd.DataFrame:
    """Return every cell's trial for ``seeds`` seeds (the adaptive run keeps only opened cells)."""
    rows = []
    for task in TASKS:
        for seed in range(seeds):
            shared = rng.normal(0.0, s.sigma[task])  # a seed's split, shared by its levels
            for level in s.levels:
                score = 0.8 + s.effects[task][level] + shared + rng.normal(0.0, s.sigma[task])
                rows.append({"task": task, "seed": seed, s.factor: level, contract.TEST_SCORE: score})
    df = pd.DataFrame(rows)
    df.insert(0, "trial", range(len(df)))
    df.attrs["factors"] = [s.factor]
    return df


def _cell(task: str, factor: str, level: str, seed: int) -> Cell:
    return Cell(task, ((factor, level),), seed)


def adaptive(s: Scenario, full: pd.DataFrame, design: Design) -> tuple[dict[str, str], int]:
    """Return the frozen verdicts and the number of trials an adaptive run would have used."""
    opened = full[full["seed"] < design.looks[0]]
    for k in range(len(design.looks)):
        rows = sequential_tests(opened, design, list(range(design.max)), hypotheses=list(s.hypotheses))
        summary = rows[(rows["test"] == SEQUENTIAL) & (rows["variant"] == "summary")].set_index("hypothesis")
        open_h = [h for h in s.hypotheses if still_open(summary.loc[h.id, "note"])]
        if not open_h or k + 1 >= len(design.looks):
            break
        needed = [(task, frozenset(needed_levels(h) or ()), h.factor) for h in open_h for task in TASKS]
        new = full[(full["seed"] >= design.looks[k]) & (full["seed"] < design.looks[k + 1])]
        keep = [_needed(_cell(r.task, s.factor, getattr(r, "level"), int(r.seed)), needed)
                for r in new.rename(columns={s.factor: "level"}).itertuples()]
        opened = pd.concat([opened, new[keep]], ignore_index=True)
        opened.attrs["factors"] = [s.factor]
    return {h: str(summary.loc[h, "verdict"]) for h in summary.index}, len(opened)


def fixed(s: Scenario, full: pd.DataFrame, seeds: int) -> tuple[dict[str, str], int]:
    part = full[full["seed"] < seeds]
    part.attrs["factors"] = [s.factor]
    rows = hypothesis_tests(part, list(s.hypotheses), settings=AnalysisSettings(margin=0.01), n_resamples=99)
    summary = rows[(rows["variant"] == "summary")].set_index("hypothesis")
    return {h: str(summary.loc[h, "verdict"]) for h in summary.index}, len(part)


def boundary_rates(design: Design, reps: int, seed: int) -> list[str]:
    lines = []
    rng = np.random.default_rng(seed)
    for kind, support_null, contra_null in (("helps", 0.01, 0.01), ("no_gain", 0.01, 0.01),
                                             ("not_worse", -0.01, -0.01), ("no_change", 0.01, 0.01)):
        out = []
        for true, which in ((support_null, SUPPORTED), (contra_null, CONTRADICTED)):
            d = rng.normal(true, 0.01, (reps, design.max))
            looks, _ = sequential_shown(kind, d, design, 0.01)
            v = np.stack([verdict_of(p, 0.05) for p in looks])
            decided = np.isin(v, [SUPPORTED, CONTRADICTED])
            first = np.where(decided.any(0), decided.argmax(0), -1)
            final = np.where(first >= 0, v[np.maximum(first, 0), np.arange(reps)], "")
            out.append(f"wrong {which} at D = {true:+.2f}: {np.mean(final == which):.4f}")
        lines.append(f"  {kind:10s} " + "; ".join(out))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--max", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    design = Design(look_schedule(3, 2, args.max))
    short = Design(look_schedule(3, 2, 5))
    start = time.perf_counter()
    print(f"adaptive seeds {{start: 3, step: 2, max: {args.max}}} (pocock spending, looks {design.looks}) vs fixed "
          f"5 and fixed {args.max} seeds; {args.reps} replicates per scenario, alpha 0.05, margin 0.01")
    totals: dict[str, list[float]] = {"adaptive": [], "adaptive-5": [], "fixed-5": [], f"fixed-{args.max}": []}
    decisions: dict[str, list[int]] = {name: [] for name in totals}
    for scenario in (FREEZING, PROXY):
        rng = np.random.default_rng(args.seed)
        results: dict[str, list[tuple[dict[str, str], int]]] = {name: [] for name in totals}
        for _ in range(args.reps):
            full = draw(scenario, rng, args.max)
            results["adaptive"].append(adaptive(scenario, full, design))
            results["adaptive-5"].append(adaptive(scenario, full[full["seed"] < 5], short))
            results["fixed-5"].append(fixed(scenario, full, 5))
            results[f"fixed-{args.max}"].append(fixed(scenario, full, args.max))
        print(f"\n{scenario.name}: {len(TASKS)} tasks x {len(scenario.levels)} levels")
        print(f"  {'design':10s} {'mean trials':>11s}  " + "  ".join(f"{h.id} (right: {scenario.truth[h.id]})"
                                                               for h in scenario.hypotheses))
        for name, runs in results.items():
            trials = float(np.mean([n for _, n in runs]))
            totals[name].append(trials)
            cells = []
            for h in scenario.hypotheses:
                verdicts = [v[h.id] for v, _ in runs]
                decided = sum(v in (SUPPORTED, CONTRADICTED) for v in verdicts)
                decisions[name].append(decided)
                wrong = sum(v in (SUPPORTED, CONTRADICTED) and v != scenario.truth[h.id] for v in verdicts)
                cells.append(f"decided {decided / len(runs):.2f}, wrong {wrong / len(runs):.3f}")
            print(f"  {name:10s} {trials:11.1f}  " + "  ".join(cells))
    fixed5 = sum(totals["fixed-5"])
    print(f"\nall scenarios: mean trials adaptive {sum(totals['adaptive']):.1f}, fixed-5 {fixed5:.1f}, "
          f"fixed-{args.max} {sum(totals[f'fixed-{args.max}']):.1f}; adaptive / fixed-5 = "
          f"{sum(totals['adaptive']) / fixed5:.2f}; adaptive-5 (max 5 seeds: looks at 3 and 5) "
          f"{sum(totals['adaptive-5']):.1f} = {sum(totals['adaptive-5']) / fixed5:.2f} of fixed-5; decisions "
          f"(hypothesis-replicates decided) adaptive {sum(decisions['adaptive'])}, adaptive-5 "
          f"{sum(decisions['adaptive-5'])}, fixed-5 {sum(decisions['fixed-5'])}, fixed-{args.max} "
          f"{sum(decisions[f'fixed-{args.max}'])}")
    print("\nsequential rules at each kind's boundary null (20,000 simulated contrasts, SD 0.01, margin 0.01):")
    print("\n".join(boundary_rates(design, 20_000, args.seed + 1)))
    print(f"\n{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

