"""``orca-ablate proxies``: list the proxy datasets available here."""

from __future__ import annotations

import argparse

HELP = "list the proxy datasets available here and, for the rest, what is missing"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``proxies`` has no options."""


def run(args: argparse.Namespace) -> int:
    """Print one line per proxy; return 0."""
    from harness.proxies import list_proxies

    specs = list_proxies()
    width = max(len(s.name) for s in specs)
    for s in specs:
        status = "available" if s.available() else f"missing: {s.requires}"
        print(f"{s.name:<{width}}  for {s.modality:<4} bodies  {s.description}  [{status}]")
    return 0
