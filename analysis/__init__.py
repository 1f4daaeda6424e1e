"""orca-ablate's statistics: trials read back from storage, significance tests, reports."""

from __future__ import annotations

__all__: list[str] = []
