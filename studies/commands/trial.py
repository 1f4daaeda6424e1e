"""``orca-ablate trial``: run one ORCA trial and print its result."""

from __future__ import annotations

import argparse
import sys

HELP = "run one ORCA trial (align the embedder, fine-tune, test) and print the result"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``trial``."""
    p.add_argument("--task", help="task name, e.g. digits, ucr:ECG200, npz:PATH (see `orca-ablate tasks`)")
    p.add_argument("--config", metavar="FILE", help="YAML file of TrialConfig settings (nested or dotted keys)")
    p.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override settings by dotted path, e.g. --set embedder.epochs=4 finetune.epochs=2 "
                        "(repeatable)")
    p.add_argument("--preset", help="a published recipe under your settings, e.g. orca (ORCA's per-task values; "
                                    "same as --set preset=NAME)")
    p.add_argument("--seed", type=int, help="random seed (same as --set seed=N)")
    p.add_argument("--data-dir", help="folder of user data files (same as --set data.data_dir=DIR)")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle-based data files (trusted files only)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def load_config(args: argparse.Namespace):  # -> harness.TrialConfig
    """Return the TrialConfig from --config, --preset, --task and --set, in that order of precedence (last wins).

    A preset is a layer under every explicit setting (``harness.presets``), whichever comes first.
    """
    from pathlib import Path

    import yaml

    from harness import ConfigError, TrialConfig, parse_assignments

    base: dict = {}
    if args.config:
        path = Path(args.config)
        try:
            base = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"--config {path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {path}: not valid YAML ({exc})") from None
        if not isinstance(base, dict):
            raise ConfigError(f"--config {path}: expected a mapping of settings, got {type(base).__name__}")
    cfg = TrialConfig.from_dict(base)
    sets = {}
    if getattr(args, "preset", None):
        sets["preset"] = args.preset
    if args.task:
        sets["task"] = args.task
    if args.seed is not None:
        sets["seed"] = args.seed
    if args.data_dir:
        sets["data.data_dir"] = args.data_dir
    if args.allow_pickle:
        sets["data.allow_pickle"] = True
    sets.update(parse_assignments(args.sets))
    return cfg.override(sets)


def _table(result) -> str:  # result: harness.TrialResult
    if result.config.get("baseline"):
        return _baseline_table(result)
    rows = [
        ("task", result.config["task"]), ("preset", result.config.get("preset") or "none"),
        ("modality", result.modality), ("metric", result.metric),
        (f"test {result.metric}", f"{result.test_score:.4f}"),
        (f"val {result.metric}", f"{result.val_score:.4f} (epoch {result.best_epoch})"),
        ("OTDD before -> after", f"{result.otdd_before:.4g} -> {result.otdd_after:.4g}"),
        ("tokens x patch", f"{result.details['tokens']} x {result.details['patch']}"),
        ("train / val / test", f"{result.details['n_train']} / {result.details['n_val']} / {result.details['n_test']}"),
        ("trainable params", f"{result.trainable_params:,}"),
        ("seconds (align, finetune, total)",
         f"{result.seconds['align']:.1f}, {result.seconds['finetune']:.1f}, {result.seconds['total']:.1f}"),
        ("peak memory", f"{result.peak_mem_mb:.0f} MiB"), ("device", result.device),
    ]
    return _format(rows)


def _baseline_table(result) -> str:  # result: harness.TrialResult of a classical baseline
    details = result.details
    rows = [
        ("task", result.config["task"]), ("baseline", details.get("baseline", result.config["baseline"])),
        ("modality", result.modality), ("metric", result.metric),
        (f"test {result.metric}", f"{result.test_score:.4f}"), (f"val {result.metric}", f"{result.val_score:.4f}"),
        ("train / val / test", f"{details.get('n_train')} / {details.get('n_val')} / {details.get('n_test')}"),
        ("seconds (total)", f"{result.seconds.get('total', float('nan')):.1f}"),
    ]
    return _format(rows)


def _format(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run(args: argparse.Namespace) -> int:
    """Run the trial; print a table (or one JSON object with --json); return 0."""
    from tqdm.auto import tqdm

    from harness import run_trial, validate_config

    cfg = load_config(args)
    validate_config(cfg)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if args.json:
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="epoch" if stage == "align" else "step",
                                     file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    try:
        result = run_trial(cfg, progress=progress)
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        print(result.to_json())
    else:
        print(_table(result))
    return 0
