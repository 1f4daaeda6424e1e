"""``orca-ablate studies``: the studies in a storage with their cell counts; ``--delete NAME --yes`` removes one."""

from __future__ import annotations

import argparse

HELP = "list the studies in a storage with their cell counts (or delete one with --delete NAME --yes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``studies``."""
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="Optuna storage (default sqlite:///orca-ablate.db), postgresql://..., or a journal file")
    parser.add_argument("--delete", metavar="NAME", default=None,
                        help="delete study NAME and all its trials (needs --yes)")
    parser.add_argument("--yes", action="store_true", help="confirm --delete")


def run(args: argparse.Namespace) -> int:
    """Print one row per study, or delete one; return 0."""
    from harness.errors import ConfigError

    from ..engine import format_table, status_of
    from ..spec import SpecError
    from ..storage import load_study, mask_url, open_storage, stored_spec, study_names
    from ..storage._open import DEFAULT_STORAGE

    url = DEFAULT_STORAGE if args.storage is None else args.storage
    store = open_storage(url, must_exist=True)
    if args.delete is not None:
        import optuna

        study = load_study(store, args.delete)  # a missing name is an error with a suggestion
        count = len(study.get_trials(deepcopy=False))
        if not args.yes:
            raise ConfigError(f"--delete {args.delete}: this removes study {args.delete!r} and its {count} trials "
                              f"from {mask_url(url)} for good; add --yes to confirm")
        optuna.delete_study(study_name=args.delete, storage=store)
        print(f"deleted study {args.delete} ({count} trials) from {mask_url(url)}")
        return 0
    rows = []
    for name in study_names(store):
        study = load_study(store, name)
        trials = len(study.get_trials(deepcopy=False))
        try:
            counts = status_of(study, stored_spec(study)).counts()
        except SpecError:  # not created by orca-ablate: no cells
            rows.append([name, "", "", "", "", "", trials])
            continue
        total = sum(counts.values())
        rows.append([name, total, counts["complete"], counts["running"], counts["failed"], counts["waiting"], trials])
    if not rows:
        print(f"no studies in {mask_url(url)}; create one with orca-ablate run SPEC --storage {mask_url(url)}")
        return 0
    print(format_table(["study", "cells", "complete", "running", "failed", "waiting", "trials"], rows))
    return 0
