"""``orca-ablate export``: every trial of a study as one tidy CSV or Parquet table."""

from __future__ import annotations

import argparse
import sys

from ._options import add_storage_arguments

HELP = "write every trial of a study (params, results, attrs) as one row of a CSV or Parquet table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``export``."""
    add_storage_arguments(parser)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="table format (default csv; parquet needs pyarrow)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="output file (default: <study>.<format> in the working directory; - for stdout, csv only)")


def run(args: argparse.Namespace) -> int:
    """Write the table and print where it went (with its size); return 0."""
    from harness.errors import ConfigError

    from ..storage import load_study, open_storage
    from ..storage._export import export_frame, write_export

    if args.out == "-" and args.format != "csv":
        raise ConfigError("--out - writes to stdout, which takes --format csv only; give --out FILE.parquet")
    study = load_study(open_storage(args.storage, must_exist=True), args.study_name)
    frame = export_frame(study)
    out = args.out or f"{study.study_name}.{args.format}"
    if out == "-":
        write_export(frame, sys.stdout, "csv")  # type: ignore[arg-type]
        return 0
    write_export(frame, out, args.format)
    print(f"{out}: {len(frame)} trials x {frame.shape[1]} columns of study {study.study_name}")
    return 0
