"""orca-ablate's study layer: YAML specs of ablation factors run as Optuna studies."""

from __future__ import annotations

__all__: list[str] = []
