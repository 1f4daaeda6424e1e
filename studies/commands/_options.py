"""Options shared by the commands that name a study (stdlib only, like every command module)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_execution_arguments", "add_spec_arguments", "add_storage_arguments", "execute", "spec_from_args",
           "study_name"]


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage URL`` and ``--study-name NAME`` (alias ``--study``) to a command's parser."""
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="Optuna storage: sqlite:///FILE.db (default sqlite:///orca-ablate.db), "
                             "postgresql://..., or a journal file: journal:///PATH.log or a path ending "
                             "in .log or .jsonl")
    parser.add_argument("--study-name", "--study", dest="study_name", default=None, metavar="NAME", type=study_name,
                        help="the study (run: default the spec's name; others: may be left out when the "
                             "storage holds one study)")


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """Add SPEC and what changes it (``--set``, ``--tasks``, ``--seeds``) to a command that takes a spec."""
    parser.add_argument("spec", metavar="SPEC",
                        help="a spec file, or the name of a shipped spec (quickstart, proxy, embedder-epochs, "
                             "freezing, pretraining, objective)")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override or add base settings, e.g. --set finetune.epochs=1 data.max_train_samples=200")
    parser.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                        help="run the spec on these tasks instead of its tasks: list, e.g. --tasks digits ucr:Crop "
                             "(a study may gain tasks later, never lose them)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                        help="use these seeds instead of the spec's seeds: list, e.g. --seeds 0 1 2 "
                             "(rerun with more seeds to extend the study)")
    parser.add_argument("--adaptive", action="store_true",
                        help="adaptive seeds: 3 first, then 2 more per round until every hypothesis is decided or "
                             "--max-seeds is reached (group-sequential; the same as seeds: {start: 3, step: 2, "
                             "max: N} in the spec)")
    parser.add_argument("--max-seeds", type=int, default=None, metavar="N",
                        help="with --adaptive: the most seeds any cell gets (default 20)")
    parser.add_argument("--trial-fn", default=None, metavar="MODULE:FUNCTION",
                        help="run every cell with this function instead of ORCA's harness.run_trial (the spec's "
                             "trial_fn:): it gets the cell's settings as a dict (task, seed, factor levels, base) "
                             "and an on_epoch callback and returns a dict with at least test_score; factor and "
                             "task names are then the function's (see docs/studies.md)")
    parser.add_argument("--allow-missing-data", action="store_true",
                        help="create the study although this host lacks a task's data or a body checkpoint "
                             "(the hosts that run the cells have them)")


def spec_from_args(args: argparse.Namespace) -> Any:  # -> studies.spec.StudySpec
    """Return the validated spec of ``args`` (SPEC with --set, --tasks, --seeds)."""
    from harness.config import parse_assignments
    from harness.errors import ConfigError

    from ..spec import load_spec

    if args.max_seeds is not None and not args.adaptive:
        raise ConfigError("--max-seeds sets the maximum of adaptive seeds; add --adaptive")
    if args.adaptive and args.seeds is not None:
        raise ConfigError("--adaptive opens seeds 0, 1, 2, ... round by round; drop --seeds (or drop --adaptive "
                          "to run exactly the seeds listed)")
    max_seeds = (args.max_seeds if args.max_seeds is not None else 20) if args.adaptive else None
    return load_spec(args.spec, parse_assignments(args.overrides), tasks=args.tasks, seeds=args.seeds,
                     check_data=not args.allow_missing_data, trial_fn=args.trial_fn, max_seeds=max_seeds)


def positive(value: str) -> float:
    """Return ``value`` as a positive finite number (argparse ``type``)."""
    import math

    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of seconds") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a positive number of seconds")
    return number


def study_name(value: str) -> str:
    """Return ``value`` when it may name a study (argparse ``type``: a bad name is a usage error)."""
    from harness.contract import check_study_name

    try:
        return check_study_name(value, "")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of commands that run cells (``run``, ``worker``): grace period, progress, test hooks."""
    parser.add_argument("--grace-period", type=positive, default=None, metavar="SECONDS",
                        help="a RUNNING attempt of another host is stale after this long without a heartbeat "
                             "(default 600); dead processes on this host are detected at once")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    # Testing hooks: the heartbeat interval, and trials in a thread of this process (no worker
    # processes). A fake trial function comes from $ORCA_ABLATE_TRIAL_FN, or run --trial-fn.
    parser.add_argument("--heartbeat-interval", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)


def execute(args: argparse.Namespace, start: Callable[..., Any], *positional: Any, **options: Any) -> int:
    """Run ``start`` (``run_study`` or ``run_worker``) with the execution options; print its summary.

    A scheduler's SIGTERM (the end of a Slurm job, ``kill``) stops it like Ctrl-C:
    running attempts are marked stale at once. Returns the report's exit code.
    """
    from ..engine import DEFAULT_GRACE_PERIOD

    signal.signal(signal.SIGTERM, _interrupt)
    report = start(*positional, trial_fn=getattr(args, "trial_fn_override", None), inline=args.inline, progress=not args.no_progress,
                   grace_period=args.grace_period if args.grace_period is not None else DEFAULT_GRACE_PERIOD,
                   heartbeat_interval=args.heartbeat_interval, max_retries=args.max_retries, **options)
    print(report.summary())
    sys.stdout.flush()
    return int(report.exit_code)


class Interrupted(KeyboardInterrupt):
    """A signal stopped the command (``signum``: SIGTERM from a scheduler, ``kill``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(signum)
