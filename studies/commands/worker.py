"""``orca-ablate worker``: join an existing study from any host and take its cells until none are left."""

from __future__ import annotations

import argparse

from ._options import add_execution_arguments, add_storage_arguments, execute

HELP = "join an existing study (PostgreSQL or journal file) and run its cells until none are left"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``worker``."""
    add_storage_arguments(parser)
    parser.add_argument("--max-trials", type=int, default=None, metavar="M",
                        help="stop after M attempts (default: run until no cell is left)")
    parser.add_argument("--max-retries", type=int, default=1, metavar="R",
                        help="re-run a cell whose attempt failed with an error up to R times, counting failures "
                             "by every worker since this one started (default 1)")
    add_execution_arguments(parser)
    # Testing hook: replace the study's trial function (its names unchanged); the study records its own.
    parser.add_argument("--trial-fn", dest="trial_fn_override", default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    """Run cells of the study; print a summary; return 1 when a cell failed after its retries, else 0."""
    from harness.errors import ConfigError

    from ..engine import run_worker

    if args.storage is None:
        raise ConfigError("--storage is required: the PostgreSQL URL (or journal file) of the study, e.g. "
                          "--storage postgresql://USER@HOST/DB")
    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError(f"--max-trials {args.max_trials}: expected 1 or more")
    if args.max_retries < 0:
        raise ConfigError(f"--max-retries {args.max_retries}: expected 0 or more")
    return execute(args, run_worker, args.storage, args.study_name, max_trials=args.max_trials)
