"""``run_trial(config) -> TrialResult``: one ORCA trial, stage by stage."""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Callable
from importlib import metadata

import torch

from .align import align, check_objective
from .bodies import load_body
from .config import TrialConfig
from .embedders import ENTRIES, Embedder, OrcaModel, tokenisation
from .errors import ConfigError
from .finetune import apply_freeze, check_finetune, evaluate, finetune, resolve_epochs
from .metrics import get_loss, get_metric
from .proxies import ProxyRequest, get_proxy, get_proxy_spec
from .result import TrialResult
from .tasks import get_task, load_task

__all__ = ["DEVICES", "resolve_device", "run_trial", "validate_config"]

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

    Checks task, proxy, objective, init, entry, freeze mode, optimizer, scheduler
    and device without loading any data or model.
    """
    get_task(cfg.task)
    get_proxy_spec(cfg.embedder.proxy)
    check_objective(cfg.embedder.objective)
    if cfg.embedder.init not in _INITS:
        raise ConfigError(f"unknown embedder.init {cfg.embedder.init!r}; expected one of {list(_INITS)}")
    if cfg.embedder.entry not in ENTRIES:
        raise ConfigError(f"unknown embedder.entry {cfg.embedder.entry!r}; expected one of {list(ENTRIES)}")
    if cfg.embedder.epochs < 0:
        raise ConfigError(f"embedder.epochs={cfg.embedder.epochs}: give 0 or more")
    if cfg.embedder.samples < 2:
        raise ConfigError(f"embedder.samples={cfg.embedder.samples}: give at least 2")
    check_finetune(cfg.finetune)
    if cfg.device not in DEVICES:
        raise ConfigError(f"unknown device {cfg.device!r}; expected one of {sorted(DEVICES)}")
    if cfg.data.max_train_samples is not None and cfg.data.max_train_samples < 2:
        raise ConfigError(f"data.max_train_samples={cfg.data.max_train_samples}: give at least 2 or null")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("orca-ablate", "torch", "transformers", "POT", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_trial(cfg: TrialConfig, on_epoch: Callable[[int, float], None] | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> TrialResult:
    """Return the result of one ORCA trial: align the embedder to the proxy, fine-tune, test.

    ``on_epoch(epoch, val_score)`` is called after each fine-tuning epoch (1-based);
    ``progress(stage, done, total)`` after each alignment epoch and training step.
    The same config and seed give the same result on CPU.
    """
    validate_config(cfg)
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    task = load_task(cfg.task, cfg.data, cfg.seed)
    metric, loss_fn = get_metric(task.metric), get_loss(task.loss)
    body = load_body(cfg.body, cfg.seed)
    tok = tokenisation(task.input_shape, cfg.embedder.tokens or task.default_tokens, cfg.embedder.patch)
    if tok.tokens > body.max_positions:
        raise ConfigError(f"the embedder makes {tok.tokens} tokens but the body takes at most "
                          f"{body.max_positions}; lower embedder.tokens or raise embedder.patch")
    # The embedder's initial weights depend on the seed only, never on alignment settings.
    torch.manual_seed(cfg.seed)
    embedder = Embedder(task.input_shape, body.dim, tok, cfg.embedder.entry)
    copied = embedder.init_from_body(body, cfg.embedder.init == "pretrained")
    proxy = get_proxy(ProxyRequest(cfg.embedder.proxy, cfg.embedder.proxy_samples, cfg.embedder.proxy_classes,
                                   cfg.embedder.entry, cfg.seed, body.path, cfg.body.pretrained), body)
    t_load = time.perf_counter()

    n_align = min(cfg.embedder.samples, len(task.x_train))
    al = align(embedder, task.x_train[:n_align], task.y_train[:n_align], proxy,
               objective=cfg.embedder.objective, epochs=cfg.embedder.epochs, lr=cfg.embedder.lr,
               progress=(lambda e, v: progress("align", e, cfg.embedder.epochs)) if progress else None)
    t_align = time.perf_counter()

    model = OrcaModel(embedder, body, task.num_classes).to(device)
    trainable = apply_freeze(model, cfg.finetune.freeze)
    gen = torch.Generator().manual_seed(cfg.seed)
    epochs = resolve_epochs(cfg.finetune, len(task.x_train))
    steps = epochs * -(-len(task.x_train) // cfg.finetune.batch_size)
    done = [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress("finetune", done[0], steps)

    ft = finetune(model, task.x_train, task.y_train, task.x_val, task.y_val, cfg=cfg.finetune,
                  loss_fn=loss_fn, metric=metric, device=device, generator=gen, on_epoch=on_epoch, on_step=step)
    t_ft = time.perf_counter()
    test_score = evaluate(model, task.x_test, task.y_test, metric, device)
    t_end = time.perf_counter()
    return TrialResult(
        test_score=test_score, val_score=ft.best_val, metric=metric.name, direction=metric.direction,
        modality=task.modality, otdd_before=al.otdd_curve[0], otdd_after=al.otdd_curve[-1],
        otdd_curve=al.otdd_curve, val_curve=ft.val_curve, best_epoch=ft.best_epoch,
        seconds={"load": t_load - t0, "align": t_align - t_load, "finetune": t_ft - t_align,
                 "evaluate": t_end - t_ft, "total": t_end - t0},
        trainable_params=trainable, peak_mem_mb=_peak_mem_mb(device), device=str(device),
        config=cfg.to_dict(), versions=_versions(),
        details={"patch": tok.patch, "tokens": tok.tokens, "grid": list(tok.grid), "init_copied": copied,
                 "proxy": proxy.description, "proxy_size": len(proxy.y),
                 "n_train": len(task.x_train), "n_val": len(task.x_val), "n_test": len(task.x_test),
                 "n_align": n_align, "num_classes": task.num_classes, "finetune_epochs": epochs},
    )
