"""Named presets: published recipes as layers of TrialConfig values, resolved per task.

A preset (``TrialConfig.preset``, ``orca-ablate trial --preset NAME``, ``preset: NAME``
in a spec's ``base``) is a layer under explicit settings: its values apply to every key
nobody set, and they follow the task (``values(task)``), so a spec's cells each get the
values of their own task. Explicit settings always win.

:data:`PRESETS` holds ``orca``: ORCA's recipe from its configs (Shen et al., 2023,
``src/configs/*.yaml``): optimizer, one learning rate for every parameter, weight decay,
batch size, gradient accumulation, fine-tuning epochs, embedder epochs and ``maxsamples``
per NAS-Bench-360 task; a linear warm-up of 5 epochs (10 for DeepSEA) then decay; the
class-wise loss ``orca-otdd-exact``; tokens straight into the encoder (``bypass``). ORCA's
body is RoBERTa-base for 1D and Swin-base for 2D tasks: point ``body.path`` at local
``roberta-base`` / ``swin-base-patch4-window7-224-in22k`` folders (nothing is downloaded).
Tasks outside its table get the task-independent part only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

__all__ = ["PRESETS", "Preset", "check_preset", "preset_values"]


@dataclass(frozen=True)
class Preset:
    """A published recipe: values for every task, and per-task values on top."""

    name: str
    description: str
    common: Mapping[str, Any]
    per_task: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def values(self, task: str) -> dict[str, Any]:
        """Return the dotted-path values of this preset for ``task`` (per-task values over the common ones)."""
        return {**self.common, **self.per_task.get(task, {})}


def _orca_task(optimizer: str, lr: float, weight_decay: float, batch: int, accumulate: int, epochs: int,
               embedder_epochs: int, maxsamples: int, warmup: int = 5) -> dict[str, Any]:
    return {"finetune.optimizer": optimizer, "finetune.lr": lr, "finetune.body_lr": lr,
            "finetune.weight_decay": weight_decay, "finetune.batch_size": batch, "finetune.accumulate": accumulate,
            "finetune.epochs": epochs, "finetune.warmup_epochs": warmup, "embedder.epochs": embedder_epochs,
            "embedder.max_per_class": maxsamples}


ORCA = Preset(
    "orca",
    "ORCA's published recipe (optimizer, single lr, weight decay, batch, accumulation, epochs, warm-up + decay, "
    "class-wise OTDD loss) per NAS-Bench-360 task",
    common={"embedder.objective": "orca-otdd-exact", "embedder.entry": "bypass", "embedder.epochs": 60,
            "embedder.max_per_class": 128, "finetune.scheduler": "warmup-linear", "finetune.warmup_epochs": 5},
    per_task={
        "satellite": _orca_task("adamw", 3e-5, 3e-6, 16, 4, 60, 60, 128),
        "deepsea": _orca_task("adam", 1e-5, 0.0, 16, 1, 13, 60, 64, warmup=10),
        "ecg": _orca_task("sgd", 1e-6, 0.1, 4, 16, 15, 60, 128),
        "darcy-flow": _orca_task("adamw", 1e-3, 5e-3, 4, 1, 100, 60, 128),
        "ninapro": _orca_task("adam", 1e-4, 1e-5, 32, 1, 60, 100, 128),
        "spherical": _orca_task("adamw", 1e-4, 0.1, 32, 4, 60, 60, 128),
    },
)

PRESETS: dict[str, Preset] = {ORCA.name: ORCA}
"""Preset name -> preset."""


def check_preset(name: str | None) -> None:
    """Raise ConfigError listing the choices when ``name`` is neither None nor a registered preset."""
    if name is not None and name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)} or null")


def preset_values(name: str | None, task: str) -> dict[str, Any]:
    """Return the values preset ``name`` gives ``task`` (``{}`` for None); raise ConfigError when unknown."""
    check_preset(name)
    return PRESETS[name].values(task) if name is not None else {}

