"""``orca-ablate status``: a table of a study's cells (complete, running, failed, waiting) by factor level."""

from __future__ import annotations

import argparse

from ._options import add_storage_arguments, positive

HELP = "show which cells of a study are complete, running, failed or waiting"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``status``."""
    add_storage_arguments(parser)
    parser.add_argument("--cells", action="store_true",
                        help="also list every cell that is not complete, with its last error")
    parser.add_argument("--grace-period", type=positive, default=None, metavar="SECONDS",
                        help="flag RUNNING attempts silent for this long as stale (default 600)")


def run(args: argparse.Namespace) -> int:
    """Print the status tables; return 0."""
    from ..engine import study_status
    from ..engine import DEFAULT_GRACE_PERIOD

    grace = args.grace_period if args.grace_period is not None else DEFAULT_GRACE_PERIOD
    status = study_status(args.storage, args.study_name, grace_period=grace)
    counts = status.counts()
    total = len(status.cells)
    print(f"study {status.study_name}: {counts['complete']}/{total} cells complete, {counts['running']} running, "
          f"{counts['failed']} failed, {counts['waiting']} waiting")
    print()
    print(status.table())
    stale = sum(c.looks_stale for c in status.cells)
    if stale:
        print(f"\n{stale} running cells look stale (owner gone or silent); the next run re-runs them.")
    if args.cells and total - counts["complete"]:
        print()
        print(status.cell_table(("running", "failed", "waiting")))
    _print_slurm(args)
    return 0


def _print_slurm(args: argparse.Namespace) -> None:
    """Print the Slurm state of the job arrays recorded in the study, if any."""
    from ..engine._slurm import array_states, recorded_submissions
    from ..storage import load_study, open_storage

    submissions = recorded_submissions(load_study(open_storage(args.storage, must_exist=True), args.study_name))
    if not submissions:
        return
    states, note = array_states([s["job_id"] for s in submissions])
    print("\nSlurm job arrays of this study (finished tasks leave squeue after a few minutes; without "
          "accounting they are not shown):")
    for entry in submissions:
        seen = states.get(entry["job_id"], {})
        shown = ", ".join(f"{n} {state}" for state, n in sorted(seen.items())) or "none in squeue"
        print(f"  job {entry['job_id']} ({entry['array']} tasks, submitted {entry['submitted']}): {shown}")
    if note:
        print(f"  ({note})")
