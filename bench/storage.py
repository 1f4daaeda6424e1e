"""Benchmark: per-trial storage overhead on SQLite, a journal file and PostgreSQL; worker throughput on PostgreSQL.

Usage: ``python bench/storage.py [--postgres URL] [--cells 40] [--workers 1 2 4] [--seconds 0.5]
[--throughput-cells 48] [--skip-throughput]``.

1. **Per-trial overhead.** ``run_study(..., inline=True)`` runs ``--cells`` fake trials that
   take no time (3 fine-tuning epochs each), so the time between two consecutive
   completions is what the engine and the storage cost per trial: the claim (under the
   study lock on PostgreSQL), 3 intermediate values, the result's ~15 user attrs, the
   duplicate check and the state. Prints the median and 90th percentile of those gaps (from
   the trials' ``datetime_complete``), this process's CPU time per trial, and the time of one
   heartbeat (written every 30 s per running trial, so not part of a short trial). Goal:
   < 50 ms per trial.
2. **Throughput on PostgreSQL.** ``run SPEC --workers 0`` creates a study of
   ``--throughput-cells`` cells, then K ``orca-ablate worker`` processes (trials in-process,
   ``--inline``) share it, each trial sleeping ``--seconds``. The rate is measured in the
   window where all K workers were running (from the last worker's first claim to the first
   worker's last completion), so process start-up is left out. Prints cells/s, the speed-up
   over 1 worker, and the efficiency against K / seconds. Goal: ≥ 3.5× at 4 workers.
   Sleeping trials need no CPU: the ratio measures claim and storage contention.

Each PostgreSQL measurement uses a fresh database on the server of ``--postgres`` (an
admin URL, default ``postgresql://postgres@127.0.0.1:5432/test``), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path; put the repository root there instead.
_ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(_ROOT)

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from studies import StudySpec, open_storage, run_study  # noqa: E402
from studies.engine._attempts import heartbeat  # noqa: E402
from harness.contract import OWNER_PID  # noqa: E402

FAKE = "studies._testing:fake_trial"


def spec_of(n_cells: int, name: str) -> StudySpec:
    """Return a spec of ``n_cells`` cells (2 tasks x 2 x 2 levels x n/8 seeds; n a multiple of 8)."""
    seeds = max(1, n_cells // 8)
    return StudySpec.from_dict({
        "name": name, "tasks": ["digits", "synthetic-1d"], "seeds": list(range(seeds)),
        "factors": {"embedder.epochs": [0, 2], "finetune.freeze": ["none", "body"]},
        "base": {"finetune.epochs": 3},
    })


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """Yield the SQLAlchemy URL of a new database on the server of ``admin_url``; drop it afterwards."""
    import psycopg

    name = f"orca_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(url)).get_trials(states=(TrialState.COMPLETE,))


def overhead(url: str, n_cells: int) -> dict[str, float]:
    """Return per-trial times (ms) of an inline run of ``n_cells`` zero-second fake trials."""
    os.environ["ORCA_ABLATE_FAKE_SECONDS"] = "0"
    os.environ["ORCA_ABLATE_FAKE_EPOCHS"] = "3"
    spec = spec_of(n_cells, "overhead")
    cpu = time.process_time()
    wall = time.perf_counter()
    report = run_study(spec, storage=url, inline=True, trial_fn=FAKE, progress=False)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    assert report.exit_code == 0, report.summary()
    ends = sorted(t.datetime_complete for t in _trials(url, spec.name) if t.datetime_complete)
    gaps = [1000 * (b - a).total_seconds() for a, b in zip(ends, ends[1:])]
    storage = open_storage(url)
    trial = optuna.create_study(study_name="heartbeat-writes", storage=storage).ask()
    beats = []
    for _ in range(20):
        start = time.perf_counter()
        heartbeat(storage, trial._trial_id)
        beats.append(1000 * (time.perf_counter() - start))
    return {"median": statistics.median(gaps), "p90": statistics.quantiles(gaps, n=10)[-1],
            "cpu": 1000 * cpu / n_cells, "wall": 1000 * wall / n_cells, "n": float(len(ends)),
            "beat": statistics.median(beats)}


def throughput(url: str, workers: int, n_cells: int, seconds: float) -> dict[str, float]:
    """Return the steady-state rate (cells/s) of ``workers`` worker processes on a fresh study."""
    name = f"throughput-{workers}"
    report = run_study(spec_of(n_cells, name), storage=url, workers=0, progress=False)
    assert report.exit_code == 0
    env = dict(os.environ, ORCA_ABLATE_FAKE_SECONDS=str(seconds), ORCA_ABLATE_FAKE_EPOCHS="3",
               PYTHONPATH=os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "studies.cli", "worker", "--storage", url, "--study-name", name,
               "--inline", "--no-progress", "--trial-fn", FAKE]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"worker exited {process.returncode}: {err[-2000:]}")
    trials = _trials(url, name)
    assert len(trials) == n_cells, f"{len(trials)} COMPLETE trials for {n_cells} cells"
    by_owner: dict[Any, list[optuna.trial.FrozenTrial]] = {}
    for trial in trials:
        by_owner.setdefault(trial.user_attrs[OWNER_PID], []).append(trial)
    start = max(min(t.datetime_start for t in ts) for ts in by_owner.values())  # all K are running
    end = min(max(t.datetime_complete for t in ts) for ts in by_owner.values())  # none has stopped yet
    inside = [t for t in trials if t.datetime_start >= start and t.datetime_complete <= end]
    span = (end - start).total_seconds()
    if len(by_owner) < workers or span <= 0 or len(inside) < workers:
        span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
        inside = trials
    return {"rate": len(inside) / span, "cells": float(len(inside)), "span": span,
            "owners": float(len(by_owner))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("ORCA_ABLATE_TEST_POSTGRES",
                                                             "postgresql://postgres@127.0.0.1:5432/test"),
                        help="admin URL of the PostgreSQL server (a fresh database is made per measurement)")
    parser.add_argument("--cells", type=int, default=40, help="fake trials per overhead measurement (default 40)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default 1 2 4)")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per fake trial (default 0.5)")
    parser.add_argument("--throughput-cells", type=int, default=48, help="cells per throughput study (default 48)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"per-trial overhead, {args.cells} zero-second fake trials in this process (ms; goal < 50):")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("sqlite (WAL)", f"sqlite:///{Path(tmp) / 'bench.db'}"),
                ("journal file", f"journal:///{Path(tmp) / 'bench.log'}")]
        for label, url in rows:
            result = overhead(url, args.cells)
            _print_overhead(label, result)
    with fresh_database(args.postgres) as url:
        _print_overhead("postgresql", overhead(url, args.cells))

    if args.skip_throughput:
        return
    print(f"\nthroughput on PostgreSQL, {args.throughput_cells} cells of {args.seconds} s, K worker processes "
          "(steady state, start-up excluded):")
    base = None
    for k in args.workers:
        with fresh_database(args.postgres) as url:
            result = throughput(url, k, args.throughput_cells, args.seconds)
        base = base or result["rate"] / (1 if k == 1 else k)
        ideal = k / args.seconds
        print(f"  {k} worker(s): {result['rate']:.2f} cells/s ({result['cells']:.0f} cells in {result['span']:.1f} s, "
              f"{result['owners']:.0f} workers took cells); speed-up {result['rate'] / base:.2f}x; "
              f"{100 * result['rate'] / ideal:.0f}% of {ideal:.1f} cells/s")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


def _print_overhead(label: str, result: dict[str, float]) -> None:
    print(f"  {label:<13} median {result['median']:6.1f}  p90 {result['p90']:6.1f}  "
          f"CPU of this process {result['cpu']:6.1f}  wall/trial {result['wall']:6.1f}  "
          f"heartbeat {result['beat']:5.1f}  ({result['n']:.0f} trials)")


if __name__ == "__main__":
    main()
