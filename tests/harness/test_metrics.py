"""Metrics against hand-computed values, losses, and model selection in the metric's direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness import BodyConfig, ConfigError, FinetuneConfig
from harness.bodies import load_body
from harness.embedders import Embedder, OrcaModel, tokenisation
from harness.finetune import finetune
from harness.metrics import LOSSES, METRICS, Metric, get_loss, get_metric, metrics_for

LOGITS = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])
CLASSES = torch.tensor([0, 1, 1, 1])
# Three labels; label 2 has no positive and is left out of the macro averages.
SCORES = torch.tensor([[0.1, 0.9, 0.3], [0.4, 0.2, 0.1], [0.35, 0.5, 0.7], [0.8, 0.1, 0.2]])
LABELS = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 1, 0], [1, 0, 0]], dtype=torch.float32)


def test_accuracy() -> None:
    # predictions 0, 1, 0, 1 against 0, 1, 1, 1
    assert get_metric("accuracy").fn(LOGITS, CLASSES) == pytest.approx(3 / 4)


def test_macro_f1() -> None:
    # class 0: tp 1, fp 1, fn 0 -> F1 = 2/3; class 1: tp 2, fp 0, fn 1 -> F1 = 4/5
    assert get_metric("macro_f1").fn(LOGITS, CLASSES) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_mean_auroc() -> None:
    # label 0: positives 0.35, 0.8 vs negatives 0.1, 0.4 -> 3 of 4 pairs ordered = 0.75; label 1: 1.0
    assert get_metric("auroc").fn(SCORES, LABELS) == pytest.approx((0.75 + 1.0) / 2)
    # a tie counts one half; the same value from logits or probabilities
    assert get_metric("auroc").fn(torch.tensor([[0.5], [0.5]]), torch.tensor([[0.0], [1.0]])) == 0.5
    assert get_metric("auroc").fn(torch.logit(SCORES), LABELS) == pytest.approx(0.875)


def test_mean_average_precision() -> None:
    # label 0 ranked 0.8(+), 0.4(-), 0.35(+), 0.1(-): AP = (1/1 + 2/3) / 2; label 1 ranked perfectly: 1
    assert get_metric("map").fn(SCORES, LABELS) == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)


def test_multilabel_metrics_without_any_mixed_label_are_nan() -> None:
    assert math.isnan(get_metric("auroc").fn(torch.zeros(3, 2), torch.zeros(3, 2)))


def test_relative_l2_per_sample_mean() -> None:
    y = torch.tensor([[[3.0, 4.0]], [[0.0, 2.0]]])  # (N=2, 1, 2) maps, flattened per sample
    pred = torch.tensor([[[3.0, 4.0]], [[0.0, 3.0]]])
    # sample 1: 0 / 5; sample 2: ||(0, 1)|| / ||(0, 2)|| = 0.5
    assert get_metric("rel_l2").fn(pred, y) == pytest.approx(0.25)
    assert get_metric("rel_l2").direction == "minimize"


def test_registry_entries_and_errors() -> None:
    assert {m.name for m in metrics_for("multilabel")} == {"auroc", "map"}
    assert [m.name for m in metrics_for("dense")] == ["rel_l2"]
    assert all(m.direction in ("maximize", "minimize") for m in METRICS.values())
    with pytest.raises(ConfigError, match=r"unknown metric 'f1'; expected one of \['accuracy', 'auroc'"):
        get_metric("f1")
    with pytest.raises(ConfigError, match="unknown loss 'l1'"):
        get_loss("l1")


def test_losses() -> None:
    out, y = torch.tensor([[0.0, 2.0]]), torch.tensor([[0.0, 1.0]])
    expected = (math.log(2) + math.log(1 + math.exp(-2))) / 2  # -log σ(x) for a positive, -log(1-σ(x)) for a negative
    assert float(LOSSES["bce_logits"](out, y)) == pytest.approx(expected)
    assert float(LOSSES["mse"](out, y)) == pytest.approx(0.5)


def test_better_respects_direction_and_nan() -> None:
    up, down = Metric("u", lambda o, y: 0.0, "maximize"), Metric("d", lambda o, y: 0.0, "minimize")
    assert up.better(0.9, 0.5) and not up.better(0.5, 0.9)
    assert down.better(0.1, 0.5) and not down.better(0.5, 0.1)
    assert up.better(0.1, float("nan")) and not down.better(float("nan"), 0.1)


def _tiny_model(tiny_body: str) -> OrcaModel:
    torch.manual_seed(0)
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    emb = Embedder((1, 8, 8), body.dim, tokenisation((1, 8, 8), 4, None), "body")
    return OrcaModel(emb, body, 3)


@pytest.mark.parametrize(("direction", "best"), [("maximize", 1), ("minimize", 2)])
def test_selection_follows_the_metric_direction(tiny_body: str, direction: str, best: int) -> None:
    scripted = iter([0.5, 0.2, 0.4])
    metric = Metric("scripted", lambda out, y: next(scripted), direction)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    res = finetune(_tiny_model(tiny_body), x, y, x[:4], y[:4], cfg=FinetuneConfig(epochs=3, batch_size=16),
                   loss_fn=torch.nn.functional.cross_entropy, metric=metric, device=torch.device("cpu"),
                   generator=torch.Generator().manual_seed(0))
    assert res.val_curve == [0.5, 0.2, 0.4] and res.best_epoch == best
    np.testing.assert_equal(res.best_val, res.val_curve[best - 1])
