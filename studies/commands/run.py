"""``orca-ablate run SPEC``: create or resume the study of a spec and run every missing cell (or none: workers 0)."""

from __future__ import annotations

import argparse

from ._options import add_execution_arguments, add_spec_arguments, add_storage_arguments, execute, spec_from_args

HELP = "create or resume the study of a spec and run every missing cell"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``run``."""
    add_spec_arguments(parser)
    add_storage_arguments(parser)
    parser.add_argument("--workers", type=int, default=1, metavar="K",
                        help="local worker processes (default 1); torch threads are split between them; "
                             "0 creates (or extends) the study and its cells without running any, for "
                             "`orca-ablate worker` processes on any host to take")
    parser.add_argument("--workers-per-gpu", type=int, default=1, metavar="P",
                        help="on a machine with GPUs, each worker process gets one GPU round-robin; P workers may "
                             "share one (pack small trials; default 1)")
    parser.add_argument("--max-retries", type=int, default=1, metavar="R",
                        help="re-run a cell whose attempt failed with an error up to R times in this run "
                             "(default 1); stale attempts of killed runs do not count")
    parser.add_argument("--artifact-dir", default=None, metavar="DIR",
                        help="where reports and figures are stored as artifacts, recorded in the study for "
                             "every command (default: <file stem>-artifacts beside a SQLite or journal file; "
                             "for PostgreSQL give a directory every host can reach)")
    add_execution_arguments(parser)

def run(args: argparse.Namespace) -> int:
    """Run the study; print a summary; return 0 when every cell is COMPLETE, else 1."""
    from ..engine import run_study

    if args.workers < 0:
        raise _usage(f"--workers {args.workers}: expected 0 or more")
    if args.max_retries < 0:
        raise _usage(f"--max-retries {args.max_retries}: expected 0 or more")
    spec = spec_from_args(args)
    return execute(args, run_study, spec, storage=args.storage, study_name=args.study_name, workers=args.workers,
                   artifact_dir=args.artifact_dir, workers_per_gpu=args.workers_per_gpu)


def _usage(message: str) -> Exception:
    from harness.errors import ConfigError

    return ConfigError(message)
