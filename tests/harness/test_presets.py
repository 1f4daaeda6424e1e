"""Presets (``--preset orca``): ORCA's per-task recipe as a layer under explicit settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import ConfigError, TrialConfig, validate_config
from harness.presets import PRESETS
from studies.cli import main



def write_satellite(root: Path, n_train: int = 96, n_test: int = 48) -> None:
    """The official format (as tests/harness/test_nasbench.py): np.save of {'data': (N, 46), 'label': 1..24}."""
    import numpy as np

    rng = np.random.default_rng(14)
    for name, n in (("satellite_train.npy", n_train), ("satellite_test.npy", n_test)):
        label = np.arange(n) % 24 + 1
        np.save(root / name, {"data": rng.normal(size=(n, 46)) + label[:, None] * 0.1, "label": label})


def test_orca_values_follow_the_task_and_explicit_settings_win() -> None:
    cfg = TrialConfig().override({"finetune.lr": 0.5, "preset": "orca", "task": "satellite"})
    ft = cfg.finetune
    assert (ft.optimizer, ft.body_lr, ft.weight_decay, ft.batch_size, ft.accumulate, ft.epochs) == \
        ("adamw", 3e-5, 3e-6, 16, 4, 60)
    assert ft.lr == 0.5 and ft.scheduler == "warmup-linear" and ft.warmup_epochs == 5
    assert (cfg.embedder.objective, cfg.embedder.epochs, cfg.embedder.max_per_class) == ("orca-otdd-exact", 60, 128)
    deepsea = cfg.override({"task": "deepsea"})  # a spec cell sets the task after the base's preset
    assert (deepsea.finetune.optimizer, deepsea.finetune.body_lr, deepsea.finetune.warmup_epochs,
            deepsea.embedder.max_per_class, deepsea.finetune.lr) == ("adam", 1e-5, 10, 64, 0.5)
    assert TrialConfig().override(deepsea.flat()) == deepsea
    assert cfg.override({"preset": None}).finetune == TrialConfig().finetune.__class__(lr=0.5)


def test_every_nasbench_task_has_orca_values_with_one_learning_rate() -> None:
    orca = PRESETS["orca"]
    assert sorted(orca.per_task) == ["darcy-flow", "deepsea", "ecg", "ninapro", "satellite", "spherical"]
    for task in orca.per_task:
        values = orca.values(task)
        assert values["finetune.lr"] == values["finetune.body_lr"]
        validate_config(TrialConfig().override({"preset": "orca", "task": task}))


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown preset 'orka'; expected one of \['orca'\]"):
        TrialConfig().override({"preset": "orka"})


def test_cli_satellite_with_the_orca_preset(tmp_path: Path, tiny_roberta: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_satellite(tmp_path)
    args = ["trial", "--task", "satellite", "--preset", "orca", "--data-dir", str(tmp_path), "--allow-pickle",
            "--json", "--set", f"body.path={tiny_roberta}", "finetune.epochs=1", "embedder.epochs=1",
            "embedder.proxy_samples=60", "embedder.proxy_classes=4"]
    assert main(args) == 0
    obj = json.loads(capsys.readouterr().out)
    cfg = obj["config"]
    assert cfg["preset"] == "orca" and cfg["task"] == "satellite"
    assert {k: cfg["finetune"][k] for k in ("optimizer", "lr", "body_lr", "weight_decay", "batch_size", "accumulate",
                                            "scheduler", "warmup_epochs")} == {
        "optimizer": "adamw", "lr": 3e-5, "body_lr": 3e-5, "weight_decay": 3e-6, "batch_size": 16, "accumulate": 4,
        "scheduler": "warmup-linear", "warmup_epochs": 5}
    assert cfg["embedder"]["objective"] == "orca-otdd-exact" and cfg["embedder"]["max_per_class"] == 128
    assert cfg["embedder"]["entry"] == "bypass" and len(obj["otdd_curve"]) == 2
