"""``orca-ablate tasks``: list the tasks available here, and what the missing ones need."""

from __future__ import annotations

import argparse

HELP = "list the tasks available here and, for the rest, what is missing"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``tasks``."""
    p.add_argument("--data-dir", help="folder of user data files (default: $ORCA_ABLATE_DATA)")


def run(args: argparse.Namespace) -> int:
    """Print one line per task; return 0."""
    from harness.tasks import list_tasks

    infos = list_tasks(args.data_dir)
    width = max(len(i.name) for i in infos)
    for i in infos:
        status = "available" if i.available else f"missing: {i.requires}"
        print(f"{i.name:<{width}}  {i.modality:<5}  {i.description}  [{status}]")
    return 0
