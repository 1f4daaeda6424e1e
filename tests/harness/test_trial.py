from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import harness
from harness import ConfigError, TrialConfig, TrialFailure, contract, run_trial, validate_config
from harness.trial import checkout_commit, versions


def _cfg(tiny_body: str, **overrides) -> TrialConfig:
    base = {"task": "synthetic-2d", "body.path": tiny_body, "embedder.epochs": 3, "embedder.samples": 120,
            "embedder.proxy_samples": 200, "embedder.proxy_classes": 4, "finetune.epochs": 2,
            "finetune.batch_size": 32}
    base.update(overrides)
    return TrialConfig().override(base)


def test_trial_end_to_end_records_everything(tiny_body: str) -> None:
    epochs: list[tuple[int, float]] = []
    r = run_trial(_cfg(tiny_body), on_epoch=lambda e, v: epochs.append((e, v)))
    assert [e for e, _ in epochs] == [1, 2] and [v for _, v in epochs] == r.val_curve
    assert 0.0 <= r.test_score <= 1.0 and r.val_score == max(r.val_curve)
    assert r.metric == "accuracy" and r.direction == "maximize" and r.modality == "2d"
    assert len(r.otdd_curve) == 4 and r.otdd_before == r.otdd_curve[0] and r.otdd_after == r.otdd_curve[-1]
    assert r.otdd_after < r.otdd_before  # alignment lowers the OTDD it minimises
    assert set(r.seconds) == {"load", "align", "finetune", "evaluate", "total"}
    assert r.trainable_params > 0 and r.peak_mem_mb > 0
    assert r.config["body"]["path"] == tiny_body and "torch" in r.versions
    assert r.versions.get(contract.GIT_COMMIT) == checkout_commit()
    assert r.details["tokens"] == 4 and r.details["patch"] == 4


def test_same_seed_same_result_other_seed_differs(tiny_body: str) -> None:
    a, b = run_trial(_cfg(tiny_body, seed=1)), run_trial(_cfg(tiny_body, seed=1))
    c = run_trial(_cfg(tiny_body, seed=2))
    assert (a.test_score, a.val_curve, a.otdd_curve) == (b.test_score, b.val_curve, b.otdd_curve)
    assert a.otdd_curve != c.otdd_curve


def test_zero_alignment_epochs_keeps_the_same_initial_embedder(tiny_body: str) -> None:
    zero = run_trial(_cfg(tiny_body, **{"embedder.epochs": 0}))
    some = run_trial(_cfg(tiny_body))
    assert zero.otdd_curve == [some.otdd_before]  # init does not depend on the number of epochs
    assert zero.otdd_after == zero.otdd_before


@pytest.mark.parametrize("objective", ["otdd-gaussian", "mmd", "l2", "none"])
def test_every_objective_records_the_otdd(tiny_body: str, objective: str) -> None:
    r = run_trial(_cfg(tiny_body, **{"embedder.objective": objective, "finetune.epochs": 1}))
    assert len(r.otdd_curve) == (1 if objective == "none" else 4)
    assert all(v > 0 for v in r.otdd_curve)


def test_random_body_differs_from_pretrained(tiny_body: str) -> None:
    pre = run_trial(_cfg(tiny_body, **{"finetune.epochs": 1}))
    rnd = run_trial(_cfg(tiny_body, **{"finetune.epochs": 1, "body.pretrained": False}))
    assert pre.otdd_before != rnd.otdd_before


def test_layers_truncate_and_bypass_entry(tiny_body: str) -> None:
    full = run_trial(_cfg(tiny_body, **{"finetune.epochs": 1}))
    one = run_trial(_cfg(tiny_body, **{"finetune.epochs": 1, "body.layers": 1}))
    assert one.trainable_params < full.trainable_params
    r = run_trial(_cfg(tiny_body, **{"finetune.epochs": 1, "embedder.entry": "bypass", "task": "synthetic-1d"}))
    assert r.modality == "1d" and "embeddings.LayerNorm -> norm" in r.details["init_copied"]


def test_trial_learns_synthetic_tasks(tiny_body: str) -> None:
    for task in ("synthetic-1d", "synthetic-2d"):
        r = run_trial(_cfg(tiny_body, task=task, **{"finetune.epochs": 8, "finetune.lr": 1e-2,
                                                    "finetune.body_lr": 1e-3}))
        assert r.test_score > 0.6, (task, r.test_score)  # chance is 1/3


def test_nan_loss_stops_with_stage_and_epoch(tiny_body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.trial as trial_mod

    monkeypatch.setattr(trial_mod, "get_loss", lambda name: lambda out, y: out.sum() * float("nan"))
    with pytest.raises(TrialFailure, match="fine-tuning: the loss became nan at epoch 1"):
        run_trial(_cfg(tiny_body))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"task": "cifar"}, "unknown task 'cifar'; expected one of"),
        ({"embedder.proxy": "imagenet"}, "unknown proxy 'imagenet'"),
        ({"embedder.objective": "otdd"}, "unknown embedder.objective 'otdd'; expected one of"),
        ({"finetune.freeze": "bdy"}, "finetune.freeze='bdy': unknown part"),
        ({"embedder.init": "xavier"}, "unknown embedder.init 'xavier'"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"finetune.optimizer": "lion"}, "unknown finetune.optimizer 'lion'"),
        ({"finetune.epochs": 0}, "give at least 1 epoch"),
    ],
)
def test_validate_config_rejects_bad_names(override: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(TrialConfig().override(override))


def test_bad_body_path_and_layers(tiny_body: str, tmp_path) -> None:
    from harness import DataError

    with pytest.raises(DataError, match="no such folder"):
        run_trial(_cfg(tiny_body, **{"body.path": str(tmp_path / "missing")}))
    with pytest.raises(ConfigError, match="body.layers=5: the body has 2 layers"):
        run_trial(_cfg(tiny_body, **{"body.layers": 5}))


@pytest.mark.slow
def test_pretrained_minilm_learns_digits() -> None:
    """The real default body, shortened: 2 of 6 layers, 3 epochs on 600 images."""
    cfg = TrialConfig().override({"task": "digits", "body.layers": 2, "embedder.epochs": 3,
                                  "data.max_train_samples": 600, "finetune.epochs": 3})
    torch.set_num_threads(2)
    r = run_trial(cfg)
    assert r.test_score > 0.6, r.test_score  # chance 0.1


def test_vision_body_trial_with_image_proxy(tiny_vit: str) -> None:
    r = run_trial(_cfg(tiny_vit, **{"embedder.entry": "bypass", "embedder.proxy": "digits",
                                    "finetune.epochs": 1}))
    assert r.modality == "2d" and "embeddings.position_embeddings -> pos" in r.details["init_copied"]
    with pytest.raises(ConfigError, match="embedder.entry='body' does not suit a vision body"):
        run_trial(_cfg(tiny_vit, **{"embedder.proxy": "digits"}))


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)


def test_versions_record_the_commit_of_the_checkout(require) -> None:
    require(shutil.which("git") is not None, "git is not installed")
    here = Path(harness.__file__).resolve().parent
    head = _git("-C", str(here), "rev-parse", "HEAD")
    if head.returncode == 0:  # running from a checkout (always so in CI)
        assert versions()[contract.GIT_COMMIT] == head.stdout.strip()
    else:
        assert contract.GIT_COMMIT not in versions()


def test_git_commit_of_a_checkout_and_of_a_plain_folder(require, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    require(shutil.which("git") is not None, "git is not installed")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no checkout above tmp_path counts
    repo, plain = tmp_path / "repo", tmp_path / "plain"
    plain.mkdir()
    assert _git("init", "-q", str(repo)).returncode == 0
    assert _git("-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q",
                "--allow-empty", "-m", "first").returncode == 0
    assert checkout_commit(repo) == _git("-C", str(repo), "rev-parse", "HEAD").stdout.strip()
    assert checkout_commit(plain) is None


def test_without_git_the_commit_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.trial as trial_mod

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(trial_mod.subprocess, "run", no_git)
    checkout_commit.cache_clear()
    try:
        assert checkout_commit() is None
        assert contract.GIT_COMMIT not in versions() and "torch" in versions()
    finally:
        checkout_commit.cache_clear()
