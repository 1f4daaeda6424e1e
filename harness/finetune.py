"""Stage 2 (refine): fine-tune embedder + body + head, select on validation, evaluate on test.

Freeze modes are ``+``-joined parts (``embedder``, ``body``, ``head``; ``none``
freezes nothing) plus ORCA's body modes ``layernorm-only`` (only the body's
LayerNorms train) and ``non-attention`` (the body's attention blocks are frozen).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from .checkpoints import CHECKPOINT_MODES, EpochState, TrialCheckpoints, restore_rng, rng_state
from .config import FinetuneConfig
from .embedders import OrcaModel
from .errors import ConfigError, TrialFailure
from .metrics import Metric

__all__ = ["AUTOCAST", "FREEZE_PARTS", "FinetuneResult", "OPTIMIZERS", "SCHEDULERS", "apply_freeze",
           "autocast_context", "evaluate", "finetune", "parse_freeze", "predict", "resolve_epochs", "to_device"]

Decode = Callable[[torch.Tensor], torch.Tensor]
"""Maps outputs or targets into the task's units before a metric (identity unless dense)."""


def _is_norm(name: str) -> bool:
    return "layernorm" in name.lower() or "layer_norm" in name.lower()


FREEZE_PARTS: dict[str, Callable[[str, str], bool]] = {
    "none": lambda part, name: False,
    "embedder": lambda part, name: part == "embedder",
    "body": lambda part, name: part == "body",
    "head": lambda part, name: part == "head",
    "layernorm-only": lambda part, name: part == "body" and not _is_norm(name),
    "non-attention": lambda part, name: part == "body" and "attention" in name.lower(),
}
"""Freeze part -> predicate(part of the model, parameter name) that says whether it is frozen."""

_BODY_MODES = {"body", "layernorm-only", "non-attention"}


def parse_freeze(spec: str) -> list[str]:
    """Return the parts of a freeze string; raise ConfigError listing the choices when invalid."""
    parts = [p.strip() for p in spec.split("+")]
    unknown = [p for p in parts if p not in FREEZE_PARTS]
    if unknown or not spec:
        raise ConfigError(f"finetune.freeze={spec!r}: unknown part {unknown or [spec]}; expected '+'-joined "
                          f"parts from {sorted(FREEZE_PARTS)}, e.g. 'none', 'body', 'embedder+body'")
    if "none" in parts and len(parts) > 1:
        raise ConfigError(f"finetune.freeze={spec!r}: 'none' cannot be combined with other parts")
    if len(_BODY_MODES.intersection(parts)) > 1:
        raise ConfigError(f"finetune.freeze={spec!r}: choose one of {sorted(_BODY_MODES)} for the body")
    return parts


def apply_freeze(model: OrcaModel, spec: str) -> int:
    """Set ``requires_grad`` per the freeze string; return the number of trainable parameters."""
    parts = parse_freeze(spec)
    trainable = 0
    for part in ("embedder", "body", "head"):
        for name, p in getattr(model, part).named_parameters():
            frozen = any(FREEZE_PARTS[x](part, name) for x in parts)
            p.requires_grad_(not frozen)
            trainable += p.numel() if not frozen else 0
    if trainable == 0:
        raise ConfigError(f"finetune.freeze={spec!r} freezes every parameter; leave something to train")
    return trainable


def _param_groups(model: OrcaModel, cfg: FinetuneConfig) -> list[dict]:
    fast = [p for m in (model.embedder, model.head) for p in m.parameters() if p.requires_grad]
    slow = [p for p in model.body.parameters() if p.requires_grad]
    groups = [{"params": fast, "lr": cfg.lr}, {"params": slow, "lr": cfg.body_lr}]
    return [g for g in groups if g["params"]]


OPTIMIZERS: dict[str, Callable[[list[dict], FinetuneConfig], torch.optim.Optimizer]] = {
    "adamw": lambda g, c: torch.optim.AdamW(g, weight_decay=c.weight_decay),
    "adam": lambda g, c: torch.optim.Adam(g, weight_decay=c.weight_decay),
    "sgd": lambda g, c: torch.optim.SGD(g, momentum=0.9, weight_decay=c.weight_decay),
}

def _warmup_linear(steps: int, warmup: int) -> Callable[[int], float]:
    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return max(0.0, (steps - s) / max(1, steps - warmup))
    return factor


SCHEDULERS: dict[str, Callable[[torch.optim.Optimizer, int, int], torch.optim.lr_scheduler.LRScheduler | None]] = {
    "none": lambda opt, steps, warmup: None,
    "cosine": lambda opt, steps, warmup: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps)),
    "linear": lambda opt, steps, warmup: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: max(0.0, 1 - s / max(1, steps))),
    "warmup-linear": lambda opt, steps, warmup: torch.optim.lr_scheduler.LambdaLR(opt, _warmup_linear(steps, warmup)),
}
"""Scheduler name -> (optimizer, optimiser steps in all, warm-up steps) -> per-step scheduler (or None)."""


def check_finetune(cfg: FinetuneConfig) -> None:
    """Raise ConfigError for unknown optimizer / scheduler / freeze names or bad numbers."""
    for key, value, registry in (("optimizer", cfg.optimizer, OPTIMIZERS), ("scheduler", cfg.scheduler, SCHEDULERS)):
        if value not in registry:
            raise ConfigError(f"unknown finetune.{key} {value!r}; expected one of {sorted(registry)}")
    parse_freeze(cfg.freeze)
    if cfg.checkpoint not in CHECKPOINT_MODES:
        raise ConfigError(f"unknown finetune.checkpoint {cfg.checkpoint!r}; expected one of {list(CHECKPOINT_MODES)}")
    if cfg.epochs is not None and cfg.epochs < 1:
        raise ConfigError(f"finetune.epochs={cfg.epochs}: give at least 1 epoch")
    if cfg.batch_size < 1:
        raise ConfigError(f"finetune.batch_size={cfg.batch_size}: give a positive batch size")
    if cfg.accumulate < 1:
        raise ConfigError(f"finetune.accumulate={cfg.accumulate}: give 1 (no accumulation) or more batches per step")
    if cfg.warmup_epochs < 0:
        raise ConfigError(f"finetune.warmup_epochs={cfg.warmup_epochs}: give 0 or more")


AUTO_STEPS, AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 200, 6, 40


def resolve_epochs(cfg: FinetuneConfig, n_train: int) -> int:
    """Return the number of fine-tuning epochs: the configured one, or auto (about 200 steps, 6..40)."""
    if cfg.epochs is not None:
        return cfg.epochs
    steps_per_epoch = -(-n_train // cfg.batch_size)
    return min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, -(-AUTO_STEPS // steps_per_epoch)))


AUTOCAST: dict[str, Callable[[], AbstractContextManager[object]]] = {
    "cuda": lambda: torch.autocast("cuda", dtype=torch.bfloat16),
}
"""Device type -> mixed-precision context for forward passes and losses; other devices run in float32."""


def autocast_context(device: torch.device) -> AbstractContextManager[object]:
    """Return the autocast context for ``device``: bf16 on CUDA, a no-op (``nullcontext``) elsewhere."""
    make = AUTOCAST.get(device.type)
    return make() if make is not None else contextlib.nullcontext()


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Return ``t`` on ``device``; host-to-CUDA copies go through pinned memory and do not block."""
    if device.type == "cuda" and t.device.type == "cpu" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 256) -> torch.Tensor:
    """Return model outputs for a whole split, in eval mode: x (N, ...) -> (N, *out) float32 on CPU."""
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(x), batch_size):
        with autocast_context(device):
            out = model(to_device(x[i:i + batch_size], device))
        outs.append(out.float().cpu())
    model.train(was_training)
    return torch.cat(outs)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, metric: Metric, device: torch.device,
             decode: Decode | None = None) -> float:
    """Return the metric on the whole split (no chunk averaging), on decoded outputs and targets."""
    out = predict(model, x, device)
    if decode is not None:
        out, y = decode(out), decode(y)
    return metric.fn(out, y)


@dataclass(frozen=True)
class FinetuneResult:
    """Validation curve, best epoch and its score; seconds spent training."""

    val_curve: list[float]
    best_epoch: int
    best_val: float
    seconds: float
    resumed_after: int = 0
    """Epochs restored from a checkpoint instead of trained in this call (0: none)."""


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a detached copy of the state dict (the weights of the best epoch so far)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def finetune(model: OrcaModel, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, *,
             cfg: FinetuneConfig, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             metric: Metric, device: torch.device, generator: torch.Generator,
             on_epoch: Callable[[int, float], None] | None = None,
             on_step: Callable[[], None] | None = None, decode: Decode | None = None,
             checkpoints: TrialCheckpoints | None = None) -> FinetuneResult:
    """Train in place and load the weights of the best validation epoch; return the curve.

    x (N, C, *S), y (N, ...) on the CPU (pinned when ``device`` is CUDA);
    batches move to ``device`` as they are drawn. The best epoch has the best
    validation metric in the metric's direction (on ``decode``-d outputs and
    targets); among equal scores, the lowest validation loss. With ``cfg.accumulate``
    = k, gradients of k batches (each loss / k) make one optimiser and scheduler step
    (the epoch's last group may be shorter). Forward passes and
    losses run under :func:`autocast_context`. The loss is checked for NaN/inf
    after every step on the CPU and once per epoch on CUDA (no per-step sync).

    With ``checkpoints``, the state after each epoch (model, optimiser, scheduler,
    ``generator`` and torch's RNG states, curve, best so far) is written before
    ``on_epoch`` is called, and a call that finds a checkpoint of the same trial there
    continues after its epoch: the result equals an uninterrupted run's on the CPU.
    ``on_epoch`` and ``on_step`` are called for the epochs trained in this call only.
    """
    groups = _param_groups(model, cfg)
    opt = OPTIMIZERS[cfg.optimizer](groups, cfg)
    steps_per_epoch = -(-len(x) // cfg.batch_size)
    updates_per_epoch = -(-steps_per_epoch // cfg.accumulate)  # optimiser steps; the last group may be short
    epochs = resolve_epochs(cfg, len(x))
    sched = SCHEDULERS[cfg.scheduler](opt, updates_per_epoch * epochs, updates_per_epoch * cfg.warmup_epochs)
    sync_each_step = device.type != "cuda"
    curve: list[float] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_val, best_loss = 0, float("nan"), float("inf")
    start = time.perf_counter()
    first = 1
    saved = checkpoints.load_epoch() if checkpoints is not None else None
    if saved is not None:
        model.load_state_dict(saved.model)
        opt.load_state_dict(saved.optimizer)
        if sched is not None and saved.scheduler is not None:
            sched.load_state_dict(saved.scheduler)
        generator.set_state(saved.generator)
        restore_rng(saved.rng, device)
        curve, best_state = list(saved.val_curve), saved.best_state
        best_epoch, best_val, best_loss = saved.best_epoch, saved.best_val, saved.best_loss
        first = saved.epoch + 1
    model.train()
    for epoch in range(first, epochs + 1):
        perm = torch.randperm(len(x), generator=generator)
        losses: list[torch.Tensor] = []
        for b, i in enumerate(range(0, len(x), cfg.batch_size)):
            idx = perm[i:i + cfg.batch_size]
            xb, yb = to_device(x[idx], device), to_device(y[idx], device)
            with autocast_context(device):
                loss = loss_fn(model(xb), yb)
            if sync_each_step:
                _check_loss(loss.detach().reshape(1), epoch)
            else:
                losses.append(loss.detach())
            if b % cfg.accumulate == 0:
                opt.zero_grad(set_to_none=True)
            (loss / cfg.accumulate if cfg.accumulate > 1 else loss).backward()
            if (b + 1) % cfg.accumulate == 0 or b + 1 == steps_per_epoch:
                opt.step()
                if sched is not None:
                    sched.step()
            if on_step is not None:
                on_step()
        if losses:
            _check_loss(torch.stack(losses), epoch)
        out = predict(model, x_val, device)
        val_loss = float(loss_fn(out, y_val))
        score = metric.fn(decode(out), decode(y_val)) if decode is not None else metric.fn(out, y_val)
        curve.append(score)
        # Ties are common on small validation sets: break them by the validation loss.
        if best_state is None or metric.better(score, best_val) or (score == best_val and val_loss < best_loss):
            best_epoch, best_val, best_loss = epoch, score, val_loss
            best_state = _snapshot(model)
        if checkpoints is not None:
            checkpoints.save_epoch(EpochState(
                epoch=epoch, model=model.state_dict(), optimizer=opt.state_dict(),
                scheduler=sched.state_dict() if sched is not None else None, generator=generator.get_state(),
                rng=rng_state(device), val_curve=curve, best_epoch=best_epoch, best_val=best_val,
                best_loss=best_loss, best_state=best_state))
        if on_epoch is not None:
            on_epoch(epoch, score)
    assert best_state is not None
    model.load_state_dict(best_state)
    return FinetuneResult(curve, best_epoch, best_val, time.perf_counter() - start, first - 1)


def _check_loss(losses: torch.Tensor, epoch: int) -> None:
    """Raise TrialFailure naming the first non-finite loss of ``losses`` (steps,) and the epoch."""
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        value = float(losses[int(bad.nonzero()[0, 0])])
        raise TrialFailure(f"fine-tuning: the loss became {value} at epoch {epoch}; "
                           "lower finetune.lr / finetune.body_lr")
