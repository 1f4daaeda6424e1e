"""Atomic tensor files, RNG states, code-version keys, and the fine-tuning checkpoints a killed trial resumes from.

Everything here is written with ``torch.save`` to a temporary file in the target's
folder and moved into place with ``os.replace`` (readers never see half a file, and
concurrent writers of the same content are safe); everything is read back with
``torch.load(weights_only=True)``: plain tensors, numbers, strings, lists and dicts.

RNG states are torch's only (the CPU generator, and the device's CUDA generator on
CUDA): the harness draws every numpy number from seeded ``np.random.default_rng``
generators and none from Python's ``random``, so their global states never reach a
result (and they are not seeded per trial, so restoring them would not reproduce a
run anyway).

A fine-tuning checkpoint (:class:`TrialCheckpoints`) is one ``finetune.pt`` with the
state after the last finished epoch, plus ``best-EPOCH.pt`` with the weights of the
best epoch so far (written only when the best changes), plus ``stage1.pt`` with the
aligned embedder; each holds the trial's key, so a folder of another trial (or of
other code) is ignored.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import contract
from .errors import ConfigError

__all__ = ["AUTO_CHECKPOINT_BATCHES", "CHECKPOINT_MODES", "EpochState", "TrialCheckpoints", "atomic_save",
           "checkpointing", "code_version", "load_tensors", "restore_rng", "rng_state", "source_digest", "stable_key"]

CHECKPOINT_MODES = ("auto", "on", "off")
"""Values of ``finetune.checkpoint``."""

AUTO_CHECKPOINT_BATCHES = 1000
"""``finetune.checkpoint=auto`` checkpoints when fine-tuning plans at least this many training batches
(epochs x batches per epoch): about 8 minutes at the 0.5 s per batch of a 6-layer MiniLM on a CPU, a few
minutes for a base-size body on a GPU. Shorter trials lose little when killed and would pay a write of
the model and optimiser state every epoch."""


def checkpointing(mode: str, batches: int) -> bool:
    """Return whether fine-tuning of ``batches`` training batches in all checkpoints under ``mode``."""
    if mode not in CHECKPOINT_MODES:
        raise ConfigError(f"unknown finetune.checkpoint {mode!r}; expected one of {list(CHECKPOINT_MODES)}")
    return mode == "on" or (mode == "auto" and batches >= AUTO_CHECKPOINT_BATCHES)


def atomic_save(obj: Any, path: Path) -> None:
    """Write ``obj`` with ``torch.save`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_tensors(path: Path) -> dict[str, Any] | None:
    """Return the dict saved at ``path`` (on the CPU, ``weights_only=True``), or None when absent or unreadable."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        warnings.warn(f"ignoring unreadable file {path}: {exc}", stacklevel=2)
        return None
    return data if isinstance(data, dict) else None


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Return torch's RNG states: ``cpu`` (uint8 tensor) and, on a CUDA ``device``, ``cuda`` (its generator's)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: Mapping[str, torch.Tensor], device: torch.device) -> None:
    """Set torch's RNG states from :func:`rng_state`'s dict."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


@functools.cache
def source_digest() -> str:
    """Return a digest of the harness package's Python sources: any edit, committed or not, changes it."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:24]


def code_version(versions: Mapping[str, str]) -> dict[str, str]:
    """Return the code-version part of a key: ``versions`` (packages, commit) plus the harness source digest."""
    return {**versions, "harness_source": source_digest()}


def stable_key(fields: Mapping[str, Any]) -> str:
    """Return a 32-hex-digit hash of ``fields`` as canonical JSON."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class EpochState:
    """Fine-tuning after ``epoch`` finished epochs: everything the next epoch starts from."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    generator: torch.Tensor
    """State of the batch-order generator (uint8 tensor)."""
    rng: dict[str, torch.Tensor]
    """:func:`rng_state` (dropout draws from the global generators)."""
    val_curve: list[float]
    best_epoch: int
    best_val: float
    best_loss: float
    best_state: dict[str, torch.Tensor]
    """The weights of ``best_epoch``."""


class TrialCheckpoints:
    """The checkpoint files of one trial in ``folder``, tagged with the trial's ``key``."""

    STAGE1 = "stage1.pt"
    FINETUNE = "finetune.pt"

    def __init__(self, folder: Path | str, key: str) -> None:
        self.folder = Path(folder)
        self.key = key

    @property
    def stage1_file(self) -> Path:
        """The file of the aligned embedder (see :mod:`harness.stage1_cache`)."""
        return self.folder / self.STAGE1

    def _best_file(self, epoch: int) -> Path:
        return self.folder / f"best-{epoch}.pt"

    def save_epoch(self, state: EpochState) -> None:
        """Write ``state`` (the best weights first, when new), then drop best files it no longer names."""
        best = self._best_file(state.best_epoch)
        if state.best_epoch == state.epoch or not best.exists():
            atomic_save({"key": self.key, "epoch": state.best_epoch,
                         "state": {k: v.detach().cpu() for k, v in state.best_state.items()}}, best)
        atomic_save({"key": self.key, "epoch": state.epoch,
                     "model": {k: v.detach().cpu() for k, v in state.model.items()},
                     "optimizer": state.optimizer, "scheduler": state.scheduler, "generator": state.generator,
                     "rng": {k: v.cpu() for k, v in state.rng.items()},
                     contract.VAL_CURVE: list(state.val_curve), contract.BEST_EPOCH: state.best_epoch,
                     "best_val": state.best_val, "best_loss": state.best_loss},
                    self.folder / self.FINETUNE)
        for old in self.folder.glob("best-*.pt"):
            if old != best:
                old.unlink(missing_ok=True)

    def load_epoch(self) -> EpochState | None:
        """Return the state after the last checkpointed epoch, or None (none there, or another trial's)."""
        data = load_tensors(self.folder / self.FINETUNE)
        if data is None or data.get("key") != self.key:
            if data is not None:
                warnings.warn(f"{self.folder}: the fine-tuning checkpoint belongs to another trial or other "
                              "code; starting fine-tuning from epoch 1", stacklevel=2)
            return None
        best_epoch = data[contract.BEST_EPOCH]
        best = load_tensors(self._best_file(best_epoch))
        if best is None or best.get("key") != self.key or best.get("epoch") != best_epoch:
            warnings.warn(f"{self.folder}: the best weights of epoch {best_epoch} are missing; "
                          "starting fine-tuning from epoch 1", stacklevel=2)
            return None
        return EpochState(epoch=data["epoch"], model=data["model"], optimizer=data["optimizer"],
                          scheduler=data["scheduler"], generator=data["generator"], rng=data["rng"],
                          val_curve=list(data[contract.VAL_CURVE]), best_epoch=best_epoch,
                          best_val=data["best_val"], best_loss=data["best_loss"], best_state=best["state"])

    def clear(self) -> None:
        """Remove this trial's checkpoint files (and leftovers of interrupted writes); keep the folder."""
        for f in [self.stage1_file, self.folder / self.FINETUNE, *self.folder.glob("best-*.pt"),
                  *self.folder.glob(".*.tmp")]:
            f.unlink(missing_ok=True)
