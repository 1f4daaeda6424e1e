"""Resume inside a trial: a run killed after epoch 2 and re-run with the same folder equals an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import ConfigError, TrialConfig, run_trial
from harness.checkpoints import AUTO_CHECKPOINT_BATCHES, checkpointing


def _cfg(tiny_body: str, **overrides) -> TrialConfig:
    base = {"task": "synthetic-1d", "body.path": tiny_body, "embedder.epochs": 3, "embedder.samples": 120,
            "embedder.proxy_samples": 200, "embedder.proxy_classes": 4, "finetune.epochs": 4,
            "finetune.batch_size": 32, "finetune.scheduler": "warmup-linear", "finetune.warmup_epochs": 1,
            "finetune.checkpoint": "on", "embedder.cache_stage1": False, "device": "cpu", "seed": 3}
    base.update(overrides)
    return TrialConfig().override(base)


class Killed(KeyboardInterrupt):
    pass


def _kill_after(n: int):  # noqa: ANN202 - an on_epoch callback
    def on_epoch(epoch: int, score: float) -> None:
        if epoch == n:
            raise Killed
    return on_epoch


def test_killed_and_resumed_trial_equals_an_uninterrupted_one(tiny_body: str, tmp_path: Path) -> None:
    cfg = _cfg(tiny_body)
    whole = run_trial(cfg.override({"finetune.checkpoint": "off"}))
    folder = tmp_path / "attempt"
    with pytest.raises(Killed):
        run_trial(cfg, on_epoch=_kill_after(2), checkpoint_dir=folder)
    names = sorted(p.name for p in folder.iterdir())
    assert names in (["best-1.pt", "finetune.pt", "stage1.pt"], ["best-2.pt", "finetune.pt", "stage1.pt"])
    seen: list[int] = []
    resumed = run_trial(cfg, on_epoch=lambda e, v: seen.append(e), checkpoint_dir=folder)
    assert seen == [3, 4]  # epochs 1 and 2 came from the checkpoint
    assert resumed.details["resumed_after_epoch"] == 2 and resumed.details["stage1_cache"] == "checkpoint"
    assert (resumed.test_score, resumed.val_curve, resumed.otdd_curve, resumed.best_epoch) == (
        whole.test_score, whole.val_curve, whole.otdd_curve, whole.best_epoch)
    assert list(folder.iterdir()) == []  # removed once the trial completed


def test_checkpoint_of_another_trial_is_ignored(tiny_body: str, tmp_path: Path) -> None:
    with pytest.raises(Killed):
        run_trial(_cfg(tiny_body), on_epoch=_kill_after(1), checkpoint_dir=tmp_path)
    other = _cfg(tiny_body, **{"finetune.lr": 3e-3})
    with pytest.warns(UserWarning, match="another trial"):
        r = run_trial(other, checkpoint_dir=tmp_path)
    # stage 1 is keyed by its own settings only: the other trial's aligned embedder is this one's too
    assert r.details["resumed_after_epoch"] == 0 and r.details["stage1_cache"] == "checkpoint"
    assert r.val_curve == run_trial(other.override({"finetune.checkpoint": "off"})).val_curve


def test_checkpoint_modes(tiny_body: str) -> None:
    assert checkpointing("on", 1) and not checkpointing("off", 10**6)
    assert checkpointing("auto", AUTO_CHECKPOINT_BATCHES) and not checkpointing("auto", AUTO_CHECKPOINT_BATCHES - 1)
    with pytest.raises(ConfigError, match="needs a checkpoint folder"):
        run_trial(_cfg(tiny_body))
    with pytest.raises(ConfigError, match="finetune.checkpoint"):
        run_trial(_cfg(tiny_body, **{"finetune.checkpoint": "always"}))
