"""The ``orca-ablate`` console script: one subcommand per module in ``studies.commands``.

Command modules import only the standard library at module level, so that
``orca-ablate --help`` stays fast; each imports torch, Optuna or pandas inside
its ``run``. A command module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import signal
import sys
import typing
from collections.abc import Sequence

__all__ = ["COMMANDS", "UsageError", "main"]

COMMANDS: dict[str, str] = {
    "trial": "studies.commands.trial",
    "tasks": "studies.commands.tasks",
    "proxies": "studies.commands.proxies",
    "otdd": "studies.commands.otdd",
    "run": "studies.commands.run",
    "worker": "studies.commands.worker",
    "status": "studies.commands.status",
    "dashboard": "studies.commands.dashboard",
    "report": "studies.commands.report",
    "plan": "studies.commands.plan",
    "submit": "studies.commands.submit",
    "export": "studies.commands.export",
    "studies": "studies.commands.studies",
}
"""Subcommand name -> module path (a command module defines HELP, add_arguments and run)."""


class UsageError(Exception):
    """A command line argparse refuses; ``main`` prints it as one line and returns 2."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{prog}: error: {message} (see {prog} --help)")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not usage text and SystemExit (subparsers inherit it)."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(self.prog, message)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand."""
    parser = _Parser(
        prog="orca-ablate",
        description="Run ORCA cross-modal fine-tuning ablations as Optuna studies and test what they show.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_path in COMMANDS.items():
        module = importlib.import_module(module_path)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 failed work, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt as exc:
        return _interrupted(args.command, getattr(exc, "signum", signal.SIGINT))
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - user errors become one line; the rest re-raise
        if not getattr(exc, "user_error", False):
            from .storage._errors import as_storage_error

            translated = as_storage_error(exc)
            if translated is None:
                raise
            exc = translated
        print(f"orca-ablate {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _interrupted(command: str, signum: int) -> int:
    """Say how the command stopped and how to resume; return 128 + the signal number (130 Ctrl-C, 143 SIGTERM)."""
    name = signal.Signals(signum).name
    if command in ("run", "worker", "submit"):
        print(f"orca-ablate {command}: stopped by {name}; running attempts were marked stale and finished cells "
              f"are kept; resume with: {shlex.join(['orca-ablate', *sys.argv[1:]])}", file=sys.stderr)
    else:
        print(f"orca-ablate {command}: stopped by {name}", file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
