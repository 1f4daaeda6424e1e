"""Device selection, bf16 autocast selection and host-to-device staging; the CUDA run only where a GPU is."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from harness import ConfigError, TrialConfig, run_trial
from harness.finetune import AUTOCAST, autocast_context, predict, to_device
from harness.tasks import load_task
from harness.parts import stage_splits
from harness.trial import resolve_device

HAS_CUDA = torch.cuda.is_available()


def test_auto_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device=cuda but no CUDA device is visible; use device=auto or device=cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="device=cuda but no CUDA device"):
        run_trial(TrialConfig().override({"device": "cuda", "task": "synthetic-2d"}))
    with pytest.raises(ConfigError, match=r"unknown device 'gpu'; expected one of \['auto', 'cpu', 'cuda'\]"):
        resolve_device("gpu")


def test_autocast_is_bf16_on_cuda_and_off_elsewhere() -> None:
    assert isinstance(autocast_context(torch.device("cpu")), contextlib.nullcontext)
    assert set(AUTOCAST) == {"cuda"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # without CUDA, torch warns that it disables the context
        ctx = autocast_context(torch.device("cuda", 0))
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16


def test_cpu_staging_is_a_no_op() -> None:
    t = torch.randn(3, 2)
    assert to_device(t, torch.device("cpu")) is t
    task = load_task("synthetic-1d", TrialConfig().data, seed=0)
    assert stage_splits(task, torch.device("cpu")) is task
    out = predict(torch.nn.Flatten(), task.x_val, torch.device("cpu"), batch_size=7)
    assert out.dtype == torch.float32 and out.shape == (len(task.x_val), 32)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_trial_on_cuda_uses_bf16_pinned_batches(tiny_body: str) -> None:
    task = stage_splits(load_task("synthetic-2d", TrialConfig().data, seed=0), torch.device("cuda"))
    assert task.x_train.is_pinned() and task.y_test.is_pinned()
    batch = to_device(task.x_train[torch.tensor([3, 1])], torch.device("cuda"))
    assert batch.device.type == "cuda"
    cfg = TrialConfig().override({"task": "synthetic-2d", "device": "cuda", "body.path": tiny_body,
                                  "embedder.epochs": 2, "embedder.samples": 100, "embedder.proxy_samples": 100,
                                  "embedder.proxy_classes": 4, "finetune.epochs": 2})
    r = run_trial(cfg)
    assert r.device.startswith("cuda") and r.peak_mem_mb > 0 and 0.0 <= r.test_score <= 1.0
    assert r.otdd_after < r.otdd_before
