"""Benchmark harness.otdd against its performance targets and print one table.

Run from the repository root:

    python bench/otdd.py                  # all sections, full sizes
    python bench/otdd.py --quick          # smaller sizes (minutes, not tens of minutes)
    python bench/otdd.py --only floor cached

Sections (every ratio is measured in this one run; times are the best of
``--repeats`` runs after one warm-up unless a row says otherwise):

- ``floor``: exact inner + emd outer, n = 2000 per side, d = 64, 10 classes,
  against one ``ot.emd2`` on the precomputed n×n cost (target ≤ 1.5×).
- ``cached``: ORCA's embedder-training pattern — Gaussian inner, debiased
  Sinkhorn outer, a fixed source (5000 × 384, 10 classes) and a 1000-point
  grad-requiring target that changes on every call (forward + backward);
  ``OTDDSource.distance`` against ``dataset_distance`` recomputing the
  source terms each call (target ≥ 3×). The recompute path is timed on
  ``--recompute-calls`` calls and scaled to the same number of calls.
- ``scale``: Gaussian inner + Sinkhorn outer at n = 5000 per side, d = 384,
  with its transport cost against the exact value (target < 60 s, within 1e-3).
- ``memory``: exact inner + emd outer at n = 10000 per side in a child process,
  peak resident memory (target < 4 GB).

On machines shared with other jobs, OpenMP's default spin-waiting makes every
small torch op cost ~10 ms; the script therefore sets OMP_WAIT_POLICY=PASSIVE
unless it is already set.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import ot  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.otdd import OTDDSource, dataset_distance, label_distances  # noqa: E402

Row = tuple[str, str, str]


def make_labelled(n: int, d: int, k: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return features (n, d) float32 and labels (n,) int64 of k Gaussian classes with shared means."""
    rng = np.random.default_rng(seed)
    means = 2.0 * np.random.default_rng(1000 + d).normal(size=(k, d))
    labels = rng.integers(0, k, n)
    x = means[labels] + rng.normal(size=(n, d)) + shift
    return x.astype(np.float32), labels


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Return the best wall time of ``repeats`` calls after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_floor(n: int, repeats: int) -> list[Row]:
    xs, ys = make_labelled(n, 64, 10, 1)
    xt, yt = make_labelled(n, 64, 10, 2, shift=0.3)
    w = label_distances(xs, ys, xt, yt, inner="exact").numpy()
    cost = 0.5 * ot.dist(xs.astype(np.float64), xt.astype(np.float64)) + 0.5 * w[ys][:, yt]
    floor_t, floor_v = best_of(lambda: ot.emd2([], [], cost, numItermax=10**9), repeats)
    ours_t, ours_v = best_of(lambda: float(dataset_distance(xs, ys, xt, yt, inner="exact", outer="emd")), repeats)
    rel = abs(float(ours_v) / float(floor_v) - 1)
    return [
        (f"floor: ot.emd2 on precomputed cost, n={n}", f"{floor_t:.3f} s", f"value {float(floor_v):.6f}"),
        (f"floor: dataset_distance exact+emd, n={n}", f"{ours_t:.3f} s", f"ratio {ours_t / floor_t:.2f}x (target <= 1.5x), |rel diff| {rel:.1e}"),
    ]


def bench_cached(
    n_source: int, n_target: int, d: int, calls: int, recompute_calls: int, repeats: int, max_iter: int
) -> list[Row]:
    xs, ys = make_labelled(n_source, d, 10, 3)
    base, yt = make_labelled(n_target, d, 10, 4, shift=0.2)
    drift = np.random.default_rng(5).normal(size=base.shape).astype(np.float32)
    settings = dict(inner="gaussian", outer="sinkhorn", reg=0.1, debiased=True, max_iter=max_iter)

    def targets(count: int) -> list[torch.Tensor]:
        return [torch.tensor(base + 0.01 * i * drift, requires_grad=True) for i in range(count)]

    def run_cached() -> float:
        source = OTDDSource(xs, ys, **settings)
        total = 0.0
        for xt in targets(calls):
            value = source.distance(xt, yt)
            value.backward()
            total += float(value.detach())
        return total

    def run_recompute(count: int) -> float:
        total = 0.0
        for xt in targets(count):
            value = dataset_distance(xs, ys, xt, yt, **settings)
            value.backward()
            total += float(value.detach())
        return total

    cached_t, cached_total = best_of(run_cached, repeats)
    recompute_t, recompute_total = best_of(lambda: run_recompute(recompute_calls), repeats)
    scaled = recompute_t * calls / recompute_calls
    source_only = OTDDSource(xs, ys, **settings)
    check = abs(float(source_only.distance(targets(1)[0], yt).detach()) - run_recompute(1))
    note = "" if recompute_calls == calls else f" (timed on {recompute_calls} calls, scaled to {calls})"
    return [
        (f"cached: OTDDSource, {calls} calls fwd+bwd, n_s={n_source}, n_t={n_target}, d={d}, max_iter={max_iter}",
         f"{cached_t:.2f} s", f"{cached_t / calls * 1e3:.0f} ms/call incl. source setup"),
        (f"cached: dataset_distance recomputing source terms{note}", f"{scaled:.2f} s",
         f"{recompute_t / recompute_calls * 1e3:.0f} ms/call; speed-up {scaled / cached_t:.1f}x (target >= 3x); "
         f"same value to {check:.1e}"),
    ]


def bench_scale(n: int, d: int) -> list[Row]:
    xs, ys = make_labelled(n, d, 10, 6)
    xt, yt = make_labelled(n, d, 10, 7, shift=0.3)
    rows: list[Row] = []
    exact_start = time.perf_counter()
    exact = float(dataset_distance(xs, ys, xt, yt, inner="gaussian", outer="emd"))
    exact_t = time.perf_counter() - exact_start
    rows.append((f"scale: gaussian+emd (exact reference), n={n}, d={d}", f"{exact_t:.2f} s", f"value {exact:.4f}"))
    for tol in (1e-4, 5e-4):
        start = time.perf_counter()
        value, log = dataset_distance(xs, ys, xt, yt, inner="gaussian", outer="sinkhorn", reg=0.1, tol=tol, log=True)
        elapsed = time.perf_counter() - start
        rows.append((
            f"scale: gaussian+sinkhorn eps=0.1, tol={tol:g}, n={n}, d={d} (one run)",
            f"{elapsed:.2f} s",
            f"rel to emd {float(value) / exact - 1:+.1e}, marginal err {log['marginal_error']:.1e}, "
            f"converged {log['converged']}, {log['n_iter']} steps (target < 60 s, within 1e-3)",
        ))
    return rows


_MEMORY_CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from otdd import make_labelled
from harness.otdd import dataset_distance
xs, ys = make_labelled({n}, 64, 10, 8)
xt, yt = make_labelled({n}, 64, 10, 9, shift=0.3)
def high_water():
    # VmHWM is this process's own peak (ru_maxrss can inherit the parent's across fork).
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1e6
base = high_water()
start = time.perf_counter()
value, log = dataset_distance(xs, ys, xt, yt, inner="exact", outer="emd", log=True)
print(time.perf_counter() - start, float(value), log["solver"], base, high_water())
"""


def bench_memory(n: int) -> list[Row]:
    bench_dir = Path(__file__).resolve().parent
    code = _MEMORY_CHILD.format(root=str(bench_dir.parent), bench=str(bench_dir), n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed, value, solver, base_gb, peak_gb = out.stdout.split()
    return [(
        f"memory: exact+emd, n={n} per side, d=64 (child process, one run)",
        f"{float(elapsed):.1f} s",
        f"peak RSS {float(peak_gb):.2f} GB (inputs loaded: {float(base_gb):.2f} GB), solver {solver}, "
        f"value {float(value):.4f} (target < 4 GB)",
    )]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a fast check")
    parser.add_argument("--only", nargs="+", choices=["floor", "cached", "scale", "memory"],
                        default=["floor", "cached", "scale", "memory"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (best is kept)")
    parser.add_argument("--calls", type=int, default=None, help="target updates in 'cached' (default 60, quick 20)")
    parser.add_argument("--recompute-calls", type=int, default=None,
                        help="calls timed on the recompute path (default: all of them)")
    parser.add_argument("--max-iter", type=int, default=5000, help="Sinkhorn step cap per solve in 'cached'")
    args = parser.parse_args()
    q = args.quick
    rows: list[Row] = []
    if "floor" in args.only:
        rows += bench_floor(1000 if q else 2000, args.repeats)
    if "cached" in args.only:
        calls = args.calls or (20 if q else 60)
        rows += bench_cached(1000 if q else 5000, 200 if q else 1000, 64 if q else 384, calls,
                             args.recompute_calls or calls, args.repeats, args.max_iter)
    if "scale" in args.only:
        rows += bench_scale(1500 if q else 5000, 64 if q else 384)
    if "memory" in args.only:
        rows += bench_memory(3000 if q else 10000)
    print(f"torch {torch.__version__}, POT {ot.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, own peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    width = max(len(r[0]) for r in rows)
    for name, t, note in rows:
        print(f"{name:<{width}}  {t:>10}  {note}")


if __name__ == "__main__":
    main()
