"""``orca-ablate dashboard``: optuna-dashboard on a study storage, with reports and figures attached."""

from __future__ import annotations

import argparse

from ._options import add_storage_arguments

HELP = "start optuna-dashboard on a storage (127.0.0.1 by default) with the artifact store attached"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dashboard``."""
    add_storage_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1); the dashboard has no authentication "
                             "and can delete studies, so anything else prints a warning")
    parser.add_argument("--port", type=int, default=8080, metavar="P", help="port to listen on (default 8080)")
    parser.add_argument("--artifact-dir", default=None, metavar="DIR",
                        help="the artifact store (reports, figures); default: the directory the studies record, "
                             "else <file stem>-artifacts beside a SQLite or journal file; required for PostgreSQL "
                             "the first time, then recorded in the study")


def run(args: argparse.Namespace) -> int:
    """Serve the dashboard until Ctrl-C; return 0."""
    from harness.errors import ConfigError

    from ..storage._dashboard import open_dashboard, serve_dashboard

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected a port number from 0 to 65535")
    board = open_dashboard(args.storage, study_name=args.study_name, artifact_dir=args.artifact_dir)
    serve_dashboard(board, host=args.host, port=args.port)
    return 0
