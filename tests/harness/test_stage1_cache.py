"""The stage-1 cache: a hit restores what a miss leaves, so the result is the same; finetune.* is not in the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness import TrialConfig, run_trial
from harness.proxies import cache_dir
from harness.stage1_cache import stage1_key


def _cfg(tiny_body: str, **overrides) -> TrialConfig:
    # 1D so that the body's dropout draws from the restored torch RNG during fine-tuning
    base = {"task": "synthetic-1d", "body.path": tiny_body, "embedder.epochs": 3, "embedder.samples": 120,
            "embedder.proxy_samples": 200, "embedder.proxy_classes": 4, "finetune.epochs": 2,
            "finetune.batch_size": 32, "device": "cpu"}
    base.update(overrides)
    return TrialConfig().override(base)


def _same(a, b) -> None:
    assert (a.test_score, a.val_curve, a.otdd_curve, a.best_epoch) == (b.test_score, b.val_curve, b.otdd_curve,
                                                                       b.best_epoch)


def _files() -> set[Path]:
    return set((cache_dir() / "stage1").glob("*.pt"))


def test_hit_equals_miss_equals_no_cache(tiny_body: str) -> None:
    cfg = _cfg(tiny_body, seed=5)
    off = run_trial(cfg.override({"embedder.cache_stage1": False}))
    before = _files()
    miss, hit = run_trial(cfg), run_trial(cfg)
    assert len(_files() - before) == 1
    assert (off.details["stage1_cache"], miss.details["stage1_cache"], hit.details["stage1_cache"]) == (
        "off", "miss", "hit")
    _same(off, miss)
    _same(miss, hit)
    assert hit.seconds["align"] == miss.seconds["align"]  # the original alignment's seconds


def test_finetune_settings_share_stage1_and_stage1_settings_do_not(tiny_body: str) -> None:
    cfg = _cfg(tiny_body, seed=6)
    base = run_trial(cfg)
    frozen = run_trial(cfg.override({"finetune.freeze": "body"}))
    assert (base.details["stage1_cache"], frozen.details["stage1_cache"]) == ("miss", "hit")
    assert frozen.otdd_curve == base.otdd_curve
    fresh = run_trial(cfg.override({"finetune.freeze": "body", "embedder.cache_stage1": False}))
    _same(frozen, fresh)
    other = run_trial(cfg.override({"embedder.lr": 5e-3}))
    assert other.details["stage1_cache"] == "miss" and other.otdd_curve != base.otdd_curve


def test_key_covers_stage1_settings_and_code_not_finetune(tiny_body: str) -> None:
    cfg, cpu, code = _cfg(tiny_body), torch.device("cpu"), {"orca-ablate": "1"}
    key = stage1_key(cfg, cpu, None, code)
    assert stage1_key(cfg.override({"finetune.lr": 0.5, "finetune.freeze": "body",
                                    "embedder.cache_stage1": False}), cpu, None, code) == key
    for change in ({"seed": 1}, {"task": "synthetic-2d"}, {"data.max_train_samples": 100},
                   {"body.layers": 1}, {"body.pretrained": False}, {"embedder.epochs": 4},
                   {"embedder.proxy": "fake"}, {"embedder.objective": "mmd"}):
        assert stage1_key(cfg.override(change), cpu, None, code) != key, change
    assert stage1_key(cfg, cpu, 48, code) != key  # the orca-* objectives' rows per class
    assert stage1_key(cfg, cpu, None, {"orca-ablate": "2"}) != key


def test_unreadable_cache_file_is_a_miss(tiny_body: str) -> None:
    cfg = _cfg(tiny_body, seed=7)
    before = _files()
    first = run_trial(cfg)
    (new,) = _files() - before
    new.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = run_trial(cfg)
    assert again.details["stage1_cache"] == "miss"
    _same(first, again)
