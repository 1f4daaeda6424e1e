"""Where orca-ablate keeps files of its own on a host: the cache folder (standard library only)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir"]

CACHE_ENV = "ORCA_ABLATE_CACHE"
"""Environment variable naming the cache folder (proxy features, stage-1 results, checkpoints)."""


def cache_dir() -> Path:
    """Return the cache folder: ``$ORCA_ABLATE_CACHE``, else ``~/.cache/orca-ablate``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "orca-ablate")
