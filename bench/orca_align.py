"""Time one alignment epoch of ORCA's class-wise loss: ours (cached proxy terms) vs ORCA's per-call path.

ORCA (``src/embedder.py``) builds a new OTDD object for every target class on every
epoch, so the proxy's own work (its class statistics, its source-to-source label
distances and the debiased self term OT_ε(proxy, proxy)) is recomputed each call.
Ours (``orca-otdd-exact``) holds an :class:`harness.otdd.OrcaSource` whose proxy terms
are computed once. Both run the same solvers on the same inputs: features
(n_classes x per_class, d) with a gradient, one backward per epoch.

    python bench/orca_align.py [--proxy 1000] [--proxy-classes 10] [--classes 10] [--per-class 144] [--dim 64]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench/otdd.py: shared machines

import torch  # noqa: E402

from harness.otdd import OrcaSource, orca_distance  # noqa: E402


def _orca_per_call(xs: torch.Tensor, ys: torch.Tensor, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ORCA's path: for each class, a fresh distance from the labelled proxy to the class as one set."""
    total = torch.zeros((), dtype=torch.float64)
    n = len(labels)
    for c in torch.unique(labels)[torch.randperm(int(torch.unique(labels).numel()))]:
        fc = feats[labels == c]
        loss = (len(fc) / n) * orca_distance(xs, ys, fc, torch.zeros(len(fc), dtype=torch.long), outer="sinkhorn")
        loss.backward(retain_graph=True)  # ORCA back-propagates class by class
        total = total + loss.detach()
    return total


def main() -> None:
    """Print the seconds per epoch of both paths and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--proxy", type=int, default=1000)
    ap.add_argument("--proxy-classes", type=int, default=10)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=144)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    xs = torch.randn(args.proxy, args.dim, dtype=torch.float64)
    ys = torch.randint(0, args.proxy_classes, (args.proxy,))
    labels = torch.arange(args.classes).repeat_interleave(args.per_class)
    base = torch.randn(len(labels), args.dim, dtype=torch.float64) + 0.3 * labels[:, None]

    def timed(step) -> float:
        times = []
        for _ in range(args.epochs):
            feats = base.clone().requires_grad_(True)
            t0 = time.perf_counter()
            step(feats)
            times.append(time.perf_counter() - t0)
        return min(times)

    t0 = time.perf_counter()
    source = OrcaSource(xs, ys, outer="sinkhorn")
    setup = time.perf_counter() - t0
    ours = timed(lambda f: source.distance(f, labels).backward())
    theirs = timed(lambda f: _orca_per_call(xs, ys, f, labels))
    print(f"proxy {args.proxy} x {args.proxy_classes} classes, target {args.classes} classes x {args.per_class}, "
          f"d={args.dim}, inner exact, outer debiased Sinkhorn eps=0.1, {torch.get_num_threads()} threads")
    print(f"ours (cached proxy terms): {ours:.3f} s/epoch (+ {setup:.3f} s once)")
    print(f"ORCA per-call path:        {theirs:.3f} s/epoch")
    print(f"ratio ORCA / ours:         {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
