"""Options shared by the commands that name a study (stdlib only, like every command module)."""

from __future__ import annotations

import argparse

__all__ = ["add_storage_arguments"]


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage URL`` and ``--study-name NAME`` (alias ``--study``) to a command's parser."""
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="Optuna storage: sqlite:///FILE.db (default sqlite:///orca-ablate.db), "
                             "postgresql://..., or a journal file: journal:///PATH.log or a path ending "
                             "in .log or .jsonl")
    parser.add_argument("--study-name", "--study", dest="study_name", default=None, metavar="NAME",
                        help="the study (run: default the spec's name; others: may be left out when the "
                             "storage holds one study)")
