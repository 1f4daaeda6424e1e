"""``orca-ablate report``: verdicts on the spec's hypotheses and write report.md/.html, tests.csv and figures."""

from __future__ import annotations

import argparse
import os

from ._options import study_name

HELP = "Analyse a study: hypothesis verdicts, statistics and figures as report.md / report.html / tests.csv."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the report options to ``parser``."""
    parser.add_argument("--storage", default="sqlite:///orca-ablate.db",
                        help="Optuna storage URL or journal file (journal:///PATH.log); "
                             "default: sqlite:///orca-ablate.db")
    parser.add_argument("--study-name", "--study", dest="study_name", required=True, type=study_name,
                        help="the study to analyse")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output directory (default: reports/<study-name>)")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of every bootstrap and permutation (default: 0; recorded in the report)")
    parser.add_argument("--n-resamples", type=int, default=9999,
                        help="bootstrap and permutation resamples (default: 9999)")
    parser.add_argument("--no-upload", action="store_true",
                        help="write the report files only: no artifact upload or dashboard note, the storage "
                             "stays as it is (e.g. a study file committed to a repository)")
    parser.add_argument("--margin", type=float, default=None, metavar="M",
                        help="margin of the hypotheses (default: the spec's analysis.margin, else 0.01, or log 1.05 "
                             "for minimised errors); a value other than the recorded one marks verdicts exploratory")
    parser.add_argument("--alpha", type=float, default=None, metavar="A",
                        help="alpha of the verdicts (default: the spec's analysis.alpha, else 0.05); a value other "
                             "than the recorded one marks verdicts exploratory")


def run(args: argparse.Namespace) -> int:
    """Write the report of ``args.study_name`` and print the path of report.md; return 0."""
    import analysis  # lazily: pandas, scipy and matplotlib stay out of `orca-ablate --help`

    if args.n_resamples < 1:
        raise analysis.AnalysisError(f"--n-resamples must be at least 1, got {args.n_resamples}")
    if args.margin is not None and not args.margin > 0:
        raise analysis.AnalysisError(f"--margin must be positive, got {args.margin}")
    if args.alpha is not None and not 0 < args.alpha < 0.5:
        raise analysis.AnalysisError(f"--alpha must be in (0, 0.5), got {args.alpha}")
    if args.random_state < 0:
        raise analysis.AnalysisError(f"--random-state must be 0 or more, got {args.random_state}")
    out = args.out if args.out is not None else os.path.join("reports", args.study_name)
    _check_out(out)
    path = analysis.write_report(args.storage, args.study_name, out, random_state=args.random_state,
                                 n_resamples=args.n_resamples, margin=args.margin, alpha=args.alpha,
                                 publish=not args.no_upload)
    print(path)
    return 0


def _check_out(out: str) -> None:
    """Raise ConfigError unless ``out`` is (or can be made) a directory this process may write."""
    from pathlib import Path

    from harness.errors import ConfigError

    path = Path(out).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out}: {path} is a file, not a directory; give a directory for the report")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create {path} ({exc.strerror or exc}); give a directory you may "
                          "write") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"--out {out}: no permission to write in {path}; give a directory you may write")
