"""Stage-1 reuse: the aligned embedder, its OTDD curve and torch's RNG state after alignment, cached on disk.

Cells that differ only in ``finetune.*`` settings (a whole ``freezing`` study) align
the same embedder from the same start; the first one to finish stage 1 stores it
under ``$ORCA_ABLATE_CACHE/stage1/KEY.pt`` (the proxies' cache folder,
:func:`harness.proxies.cache_dir`) and the others restore it instead of aligning.
A hit gives the same result as a miss: the embedder's weights, the recorded OTDD curve
and the RNG states that fine-tuning draws from are exactly those a miss leaves.

The key (:func:`stage1_key`) covers everything that decides stage 1: the task and data
settings, the seed, the body (path with its files' sizes and mtimes, pretrained,
layers), every ``embedder.*`` setting but ``cache_stage1``, the proxy's source files,
the rows per class the ``orca-*`` objectives take (from ``finetune.batch_size``), the
device kind (and CUDA device name), and the code version (package versions, commit,
and a digest of the harness sources). It does not cover ``finetune.*``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import contract
from .checkpoints import atomic_save, load_tensors, restore_rng, rng_state, stable_key
from .config import TrialConfig
from .embedders import Embedder
from .proxies import cache_dir, file_stamp, get_proxy_spec

__all__ = ["STAGE1_FORMAT", "Stage1", "load_stage1", "restore_stage1", "save_stage1", "stage1_key", "stage1_path"]

STAGE1_FORMAT = 1
"""Version of the stored record; part of the key."""


@dataclass(frozen=True)
class Stage1:
    """What a trial takes from stage 1: embedder weights, OTDD curve, align seconds, RNG states after it."""

    embedder: dict[str, torch.Tensor]
    """The aligned embedder's state dict (CPU tensors)."""
    otdd_curve: list[float]
    seconds: float
    """Wall-clock seconds the alignment took when it ran."""
    rng: dict[str, torch.Tensor]
    """:func:`harness.checkpoints.rng_state` right after alignment."""


def stage1_key(cfg: TrialConfig, device: torch.device, max_per_class: int | None, code: Mapping[str, str]) -> str:
    """Return the cache key of ``cfg``'s stage 1 on ``device``.

    ``max_per_class`` is the resolved per-class take (:func:`harness.align.orca_class_take`);
    ``code`` is :func:`harness.checkpoints.code_version`'s dict.
    """
    embedder = {k: v for k, v in dataclasses.asdict(cfg.embedder).items() if k != "cache_stage1"}
    proxy_arg = cfg.embedder.proxy.partition(":")[2]
    fields: dict[str, Any] = {
        "format": STAGE1_FORMAT, "task": cfg.task, "seed": cfg.seed, "data": dataclasses.asdict(cfg.data),
        "body": dataclasses.asdict(cfg.body), "body_files": file_stamp(cfg.body.path) if cfg.body.path else "",
        "embedder": embedder, "proxy_files": get_proxy_spec(cfg.embedder.proxy).stamp(proxy_arg),
        "max_per_class_take": max_per_class, "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "", "code": dict(code),
    }
    return stable_key(fields)


def stage1_path(key: str) -> Path:
    """Return the cache file of a stage-1 key."""
    return cache_dir() / "stage1" / f"{key}.pt"


def save_stage1(path: Path, key: str, embedder: Embedder, otdd_curve: list[float], seconds: float,
                device: torch.device) -> Stage1:
    """Write the stage-1 record of ``embedder`` (now aligned) and torch's RNG state now to ``path``; return it."""
    record = Stage1({k: v.detach().cpu().clone() for k, v in embedder.state_dict().items()}, list(otdd_curve),
                    float(seconds), rng_state(device))
    atomic_save({"key": key, "embedder": record.embedder, contract.OTDD_CURVE: record.otdd_curve,
                 "seconds": record.seconds, "rng": record.rng}, path)
    return record


def load_stage1(path: Path, key: str) -> Stage1 | None:
    """Return the stage-1 record at ``path``, or None when absent, unreadable or of another key."""
    data = load_tensors(path)
    if data is None or data.get("key") != key:
        return None
    return Stage1(data["embedder"], [float(v) for v in data[contract.OTDD_CURVE]], float(data["seconds"]),
                  data["rng"])


def restore_stage1(record: Stage1, embedder: Embedder, device: torch.device) -> None:
    """Load the aligned weights into ``embedder`` and set torch's RNG states to those after alignment."""
    embedder.load_state_dict(record.embedder)
    restore_rng(record.rng, device)
