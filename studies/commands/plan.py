"""``orca-ablate plan SPEC``: the cells a spec still has to run and the compute they need; runs nothing."""

from __future__ import annotations

import argparse

from ._options import add_spec_arguments, add_storage_arguments

HELP = "show the cells a spec still has to run and the core- or GPU-hours they need (runs nothing)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``plan``."""
    add_spec_arguments(parser)
    add_storage_arguments(parser)
    add_resource_arguments(parser)
    parser.add_argument("--pilot", action="store_true",
                        help="for tasks without a completed trial, time one trial per task here (not stored)")


def add_resource_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--cpus-per-worker`` and ``--gpus-per-worker`` (shared with ``submit``)."""
    parser.add_argument("--cpus-per-worker", type=int, default=1, metavar="C",
                        help="cores per worker (default 1): core-hours = worker-hours x C")
    parser.add_argument("--gpus-per-worker", type=int, default=0, metavar="G",
                        help="GPUs per worker (default 0): GPU-hours = worker-hours x G")


def run(args: argparse.Namespace) -> int:
    """Print the plan; return 0."""
    from ..engine._plan import plan_study
    from ._options import spec_from_args

    plan = plan_study(spec_from_args(args), storage=args.storage, study_name=args.study_name,
                      cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, pilot=args.pilot)
    print(plan.summary())
    return 0
