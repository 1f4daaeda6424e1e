"""The ``orca-ablate`` console script: one subcommand per module in ``studies.commands``.

Command modules import only the standard library at module level, so that
``orca-ablate --help`` stays fast; each imports torch, Optuna or pandas inside
its ``run``. A command module defines ``HELP`` (one line), ``add_arguments(parser)``
and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

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


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - user errors become one line; the rest re-raise
        if getattr(exc, "user_error", False):
            print(f"orca-ablate {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
