"""Which GPU each local worker process gets: round-robin over the visible devices, P workers per GPU at most.

Each worker process is started with ``CUDA_VISIBLE_DEVICES`` set to its one
device, so a trial's ``cuda`` is that GPU and K workers on a K-GPU node never
share one. The visible devices are ``CUDA_VISIBLE_DEVICES`` when it is set (as
Slurm sets it for a job's GPUs), else those ``nvidia-smi -L`` lists; none on a
CPU machine, where workers get no GPU and nothing is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from harness.errors import ConfigError

__all__ = ["GPU_ENV", "assign_gpus", "visible_gpus"]

GPU_ENV = "CUDA_VISIBLE_DEVICES"


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the ids of the GPUs this process may use (``CUDA_VISIBLE_DEVICES``, else nvidia-smi; else [])."""
    environ = os.environ if environ is None else environ
    if GPU_ENV in environ:
        return [d.strip() for d in environ[GPU_ENV].split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def assign_gpus(workers: int, gpus: Sequence[str], per_gpu: int = 1) -> list[str | None]:
    """Return the GPU of each of ``workers`` local workers: ``gpus`` round-robin, at most ``per_gpu`` each.

    No GPUs: every worker gets None (CPU). Raises ConfigError when ``workers``
    exceed ``len(gpus) * per_gpu``, naming the fix.
    """
    if per_gpu < 1:
        raise ConfigError(f"--workers-per-gpu {per_gpu}: expected 1 or more")
    if not gpus:
        return [None] * workers
    if workers > len(gpus) * per_gpu:
        raise ConfigError(f"--workers {workers} on {len(gpus)} GPU(s) ({', '.join(gpus)}) with --workers-per-gpu "
                          f"{per_gpu}: at most {len(gpus) * per_gpu} workers; raise --workers-per-gpu to pack small "
                          "trials, or use fewer workers")
    return [gpus[i % len(gpus)] for i in range(workers)]
