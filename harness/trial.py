"""``run_trial(config) -> TrialResult``: one ORCA trial, stage by stage."""

from __future__ import annotations

import functools
import math
import platform
import re
import resource
import subprocess
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch

from . import contract
from .align import align, check_objective, orca_class_take
from .bodies import check_body_path
from .checkpoints import TrialCheckpoints, checkpointing, code_version, stable_key
from .config import TrialConfig
from .embedders import ENTRIES
from .errors import ConfigError
from .finetune import apply_freeze, check_finetune, finetune, predict, resolve_epochs
from .metrics import get_loss, get_metric, metrics_for
from .parts import build_parts
from .presets import check_preset
from .proxies import get_proxy_spec
from .result import TrialResult
from .stage1_cache import Stage1, load_stage1, restore_stage1, save_stage1, stage1_key, stage1_path
from .tasks import check_task_data, get_output_kind, get_task

__all__ = ["DEVICES", "SEED_LIMIT", "check_data", "checkout_commit", "resolve_device", "run_trial", "validate_config",
           "versions"]

SEED_LIMIT = 2**32
"""Seeds are 0 <= seed < 2**32 (what numpy's and torch's seeding take everywhere)."""

DEVICES: dict[str, Callable[[], torch.device]] = {
    "auto": lambda: torch.device("cuda" if torch.cuda.is_available() else "cpu"),
    "cpu": lambda: torch.device("cpu"),
    "cuda": lambda: torch.device("cuda"),
}
_INITS = ("pretrained", "random")


def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``auto | cpu | cuda``; raise ConfigError when unusable."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; expected one of {sorted(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=auto or device=cpu")
    return DEVICES[name]()


def validate_config(cfg: TrialConfig) -> None:
    """Raise ConfigError when a name in ``cfg`` is not registered or a number is out of range.

    Checks task, preset, proxy, objective, init, entry, freeze mode, optimizer, scheduler
    and device without loading any data or model.
    """
    spec = get_task(cfg.task)
    get_output_kind(spec.output)
    if spec.output not in get_metric(spec.metric).outputs:
        raise ConfigError(f"task {cfg.task!r}: metric {spec.metric!r} is not defined for {spec.output!r} outputs")
    get_proxy_spec(cfg.embedder.proxy)
    check_objective(cfg.embedder.objective)
    check_preset(cfg.preset)
    if cfg.baseline is not None:
        from .baselines import get_baseline

        get_baseline(cfg.baseline)
    if cfg.embedder.init not in _INITS:
        raise ConfigError(f"unknown embedder.init {cfg.embedder.init!r}; expected one of {list(_INITS)}")
    if cfg.embedder.entry not in ENTRIES:
        raise ConfigError(f"unknown embedder.entry {cfg.embedder.entry!r}; expected one of {list(ENTRIES)}")
    if cfg.embedder.epochs < 0:
        raise ConfigError(f"embedder.epochs={cfg.embedder.epochs}: give 0 or more")
    if cfg.embedder.samples < 2:
        raise ConfigError(f"embedder.samples={cfg.embedder.samples}: give at least 2")
    if cfg.embedder.max_per_class is not None and cfg.embedder.max_per_class < 1:
        raise ConfigError(f"embedder.max_per_class={cfg.embedder.max_per_class}: give a positive count or null")
    check_finetune(cfg.finetune)
    if cfg.device not in DEVICES:
        raise ConfigError(f"unknown device {cfg.device!r}; expected one of {sorted(DEVICES)}")
    if cfg.data.max_train_samples is not None and cfg.data.max_train_samples < 2:
        raise ConfigError(f"data.max_train_samples={cfg.data.max_train_samples}: give at least 2 or null")
    for path in ("embedder.tokens", "embedder.patch"):
        value = cfg.get(path)
        if value is not None and value < 1:
            raise ConfigError(f"{path}={value}: give a positive number, or null for the task's default")
    if not 0 <= cfg.seed < SEED_LIMIT:
        raise ConfigError(f"seed={cfg.seed}: give a seed from 0 to {SEED_LIMIT - 1}")
    for path, value in cfg.flat().items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}={value}: give a finite number")


def check_data(cfg: TrialConfig) -> None:
    """Raise DataError when the task's data or the body's checkpoint are not here, without loading either.

    Reads at most file headers (``ucr:``/``npz:`` tasks, NAS-Bench-360 files) and the body's
    ``config.json`` (``body.path``): what a host creating a study can check before any cell runs.
    """
    check_task_data(cfg.task, cfg.data)
    if cfg.body.path is not None:
        check_body_path(cfg.body.path)


@functools.cache
def checkout_commit(directory: Path = Path(__file__).resolve().parent) -> str | None:
    """Return the commit checked out at ``directory`` (default: this package's folder), or None.

    None when git is not installed, does not answer within 5 s, or ``directory`` is not
    in a git checkout (an installed wheel, say). Asked once per directory per process.
    """
    try:
        out = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", sha) else None


def versions() -> dict[str, str]:
    """Return the versions a result records: python, orca-ablate, torch, transformers, POT, numpy, git commit.

    The commit (key ``contract.GIT_COMMIT``) is there only when the harness runs from a git checkout.
    """
    out = {"python": platform.python_version()}
    for dist in ("orca-ablate", "torch", "transformers", "POT", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    commit = checkout_commit()
    if commit is not None:
        out[contract.GIT_COMMIT] = commit
    return out


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _trial_key(cfg: TrialConfig, device: torch.device, code: dict[str, str]) -> str:
    """Return the key of a trial's checkpoints: its config (less the settings that never change a result)."""
    config = cfg.to_dict()
    config["embedder"].pop("cache_stage1")
    config["finetune"].pop("checkpoint")
    return stable_key({"config": config, "device": device.type, "code": code})


def run_trial(cfg: TrialConfig, on_epoch: Callable[[int, float], None] | None = None,
              progress: Callable[[str, int, int], None] | None = None,
              checkpoint_dir: str | Path | None = None) -> TrialResult:
    """Return the result of one ORCA trial: align the embedder to the proxy, fine-tune, test.

    ``on_epoch(epoch, val_score)`` is called after each fine-tuning epoch (1-based);
    ``progress(stage, done, total)`` after each alignment epoch and training step.
    The same config and seed give the same result on CPU.

    Stage 1 comes from the stage-1 cache when ``embedder.cache_stage1`` is on and an
    earlier trial aligned the same embedder (:mod:`harness.stage1_cache`;
    ``details["stage1_cache"]`` says ``hit``, ``miss``, ``off`` or ``checkpoint``, and
    ``seconds["align"]`` is then the original alignment's). With ``checkpoint_dir`` (a
    folder of this attempt's own) and ``finetune.checkpoint`` on (or auto and long
    enough), stage 1 and every fine-tuning epoch are checkpointed there; a re-run with
    the same folder resumes after the last finished epoch with the same result on the
    CPU (``details["resumed_after_epoch"]``), and the files are removed once the trial
    completes. Raises ConfigError for ``finetune.checkpoint=on`` without a folder.

    With ``cfg.baseline`` set (a spec's ``baselines:`` cell), the classical baseline of
    that name runs instead, on the same splits (:func:`harness.baselines.run_baseline`).
    """
    validate_config(cfg)
    if cfg.baseline is not None:
        from .baselines import run_baseline

        return TrialResult(**run_baseline(cfg, cfg.baseline, on_epoch))
    if cfg.finetune.checkpoint == "on" and checkpoint_dir is None:
        raise ConfigError("finetune.checkpoint=on needs a checkpoint folder: run_trial(config, checkpoint_dir=...); "
                          "or set finetune.checkpoint=auto / off")
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    parts = build_parts(cfg, device)
    task, model, proxy, tok = parts.task, parts.model, parts.proxy, parts.tokenisation
    assert proxy is not None  # built with_proxy
    metric, loss_fn = get_metric(task.metric), get_loss(task.loss)
    t_load = time.perf_counter()

    n_align = min(cfg.embedder.samples, len(task.x_train))
    take = orca_class_take(cfg.embedder.max_per_class, cfg.finetune.batch_size)
    epochs = resolve_epochs(cfg.finetune, len(task.x_train))
    steps = epochs * -(-len(task.x_train) // cfg.finetune.batch_size)
    code = code_version(versions())
    checkpoints = None
    if checkpoint_dir is not None and checkpointing(cfg.finetune.checkpoint, steps):
        checkpoints = TrialCheckpoints(checkpoint_dir, _trial_key(cfg, device, code))
    s1_key = stage1_key(cfg, device, take, code)
    cached: Stage1 | None = None
    source = "off"
    if checkpoints is not None:
        cached = load_stage1(checkpoints.stage1_file, s1_key)
        source = "checkpoint" if cached is not None else source
    if cached is None and cfg.embedder.cache_stage1:
        cached = load_stage1(stage1_path(s1_key), s1_key)
        source = "hit" if cached is not None else "miss"
    if cached is not None:
        restore_stage1(cached, model.embedder, device)
        otdd_curve, align_seconds = cached.otdd_curve, cached.seconds
    else:
        al = align(model.embedder, task.x_train[:n_align], task.otdd_labels[:n_align], proxy,
                   objective=cfg.embedder.objective, epochs=cfg.embedder.epochs, lr=cfg.embedder.lr,
                   progress=(lambda e, v: progress("align", e, cfg.embedder.epochs)) if progress else None,
                   max_per_class=take, seed=cfg.seed)
        otdd_curve, align_seconds = al.otdd_curve, time.perf_counter() - t_load
        if cfg.embedder.cache_stage1:
            save_stage1(stage1_path(s1_key), s1_key, model.embedder, otdd_curve, align_seconds, device)
    if checkpoints is not None and source != "checkpoint":
        save_stage1(checkpoints.stage1_file, s1_key, model.embedder, otdd_curve, align_seconds, device)
    t_align = time.perf_counter()

    trainable = apply_freeze(model, cfg.finetune.freeze)
    gen = torch.Generator().manual_seed(cfg.seed)
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress("finetune", done[0], steps)

    ft = finetune(model, task.x_train, task.y_train, task.x_val, task.y_val, cfg=cfg.finetune,
                  loss_fn=loss_fn, metric=metric, device=device, generator=gen, on_epoch=on_epoch, on_step=step,
                  decode=task.decode, checkpoints=checkpoints)
    t_ft = time.perf_counter()
    out, y_test = task.decode(predict(model, task.x_test, device)), task.decode(task.y_test)
    test_metrics = {m.name: m.fn(out, y_test) for m in metrics_for(task.output)}
    test_score = test_metrics[metric.name]
    if checkpoints is not None:
        checkpoints.clear()
    t_end = time.perf_counter()
    return TrialResult(
        test_score=test_score, val_score=ft.best_val, metric=metric.name, direction=metric.direction,
        modality=task.modality, otdd_before=otdd_curve[0], otdd_after=otdd_curve[-1],
        otdd_curve=otdd_curve, val_curve=ft.val_curve, best_epoch=ft.best_epoch,
        seconds={"load": t_load - t0, "align": align_seconds, "finetune": t_ft - t_align,
                 "evaluate": t_end - t_ft, "total": t_end - t0},
        trainable_params=trainable, peak_mem_mb=_peak_mem_mb(device), device=str(device),
        config=cfg.to_dict(), versions=versions(),
        details={"patch": tok.patch, "tokens": tok.tokens, "grid": list(tok.grid), "init_copied": parts.init_copied,
                 "proxy": proxy.description, "proxy_size": len(proxy.y),
                 "n_train": len(task.x_train), "n_val": len(task.x_val), "n_test": len(task.x_test),
                 "n_align": n_align, "num_classes": task.num_classes, "finetune_epochs": epochs,
                 "output": task.output, "target_shape": list(task.target_shape), contract.TEST_METRICS: test_metrics,
                 "otdd_label_classes": int(task.otdd_labels[:n_align].unique().numel()),
                 "stage1_cache": source, "stage1_seconds_here": t_align - t_load,
                 "resumed_after_epoch": ft.resumed_after},
    )
