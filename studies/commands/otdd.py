"""``orca-ablate otdd``: the OTDD between a task's embedded training data and a proxy."""

from __future__ import annotations

import argparse

HELP = "print the OTDD between a task's embedded training data (untrained embedder) and a proxy, with timings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``otdd``."""
    p.add_argument("--task", required=True, help="task name, e.g. digits, ucr:ECG200")
    p.add_argument("--proxy", help="proxy name, e.g. vocab, fake (default: the config's embedder.proxy)")
    p.add_argument("--inner", default="exact", help="label distance: exact or gaussian (default exact)")
    p.add_argument("--outer", default="emd", help="outer problem: emd or sinkhorn (default emd)")
    p.add_argument("--reg", type=float, default=0.1, help="entropic regularisation of sinkhorn (default 0.1)")
    p.add_argument("--debiased", action="store_true", help="sinkhorn: the debiased Sinkhorn divergence")
    p.add_argument("--set", dest="sets", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override TrialConfig settings, e.g. --set embedder.samples=500 embedder.proxy_samples=500 "
                        "(repeatable)")
    p.add_argument("--data-dir", help="folder of user data files")


def run(args: argparse.Namespace) -> int:
    """Embed the task's training sample with a fresh embedder, compute the OTDD, print it; return 0."""
    import time

    import torch

    from harness import ConfigError, TrialConfig, build_parts, parse_assignments, validate_config
    from harness.otdd import dataset_distance

    sets = {"task": args.task, **parse_assignments(args.sets)}
    if args.proxy:
        sets["embedder.proxy"] = args.proxy
    if args.data_dir:
        sets["data.data_dir"] = args.data_dir
    cfg = TrialConfig().override(sets)
    validate_config(cfg)
    t0 = time.perf_counter()
    parts = build_parts(cfg)  # on the CPU, as a trial builds them
    task, proxy = parts.task, parts.proxy
    assert proxy is not None  # built with_proxy
    n = min(cfg.embedder.samples, len(task.x_train))
    with torch.no_grad():
        feats = parts.embedder(task.x_train[:n]).mean(dim=1)
    t1 = time.perf_counter()
    try:
        value = dataset_distance(proxy.x, proxy.y, feats, task.otdd_labels[:n], inner=args.inner, outer=args.outer,
                                 reg=args.reg, debiased=args.debiased)
    except ValueError as exc:  # the OTDD functions raise ValueError for bad settings and bad data
        raise ConfigError(f"--inner/--outer/--reg: {exc}") from None
    t2 = time.perf_counter()
    print(f"OTDD({cfg.embedder.proxy} -> {cfg.task}) = {float(value):.6g}  "
          f"[inner={args.inner}, outer={args.outer}{', debiased' if args.debiased else ''}; "
          f"{len(proxy.y)} proxy x {n} task points, width {feats.shape[1]}]")
    print(f"seconds: prepare {t1 - t0:.2f}, distance {t2 - t1:.2f}")
    return 0
