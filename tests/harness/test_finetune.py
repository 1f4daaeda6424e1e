from __future__ import annotations

import pytest
import torch

from harness import BodyConfig, ConfigError, FinetuneConfig
from harness.bodies import load_body
from harness.embedders import Embedder, OrcaModel, tokenisation
from harness.finetune import apply_freeze, finetune, parse_freeze
from harness.metrics import get_metric


def _model(tiny_body: str) -> OrcaModel:
    torch.manual_seed(0)
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    emb = Embedder((1, 8, 8), body.dim, tokenisation((1, 8, 8), 4, None), "body")
    emb.init_from_body(body, True)
    return OrcaModel(emb, body, 3)


def _changed_after_one_step(model: OrcaModel, freeze: str) -> dict[str, set[str]]:
    apply_freeze(model, freeze)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    cfg = FinetuneConfig(epochs=1, batch_size=16, freeze=freeze, lr=1e-2, body_lr=1e-2)
    finetune(model, x, y, x[:4], y[:4], cfg=cfg, loss_fn=torch.nn.functional.cross_entropy,
             metric=get_metric("accuracy"), device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    out: dict[str, set[str]] = {"changed": set(), "same": set()}
    for n, p in model.named_parameters():
        out["changed" if not torch.equal(before[n], p.detach()) else "same"].add(n)
    return out


def _part(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize(
    ("freeze", "frozen_parts", "trained_parts"),
    [
        ("none", set(), {"embedder", "body", "head"}),
        ("body", {"body"}, {"embedder", "head"}),
        ("embedder", {"embedder"}, {"body", "head"}),
        ("head", {"head"}, {"embedder", "body"}),
        ("embedder+body", {"embedder", "body"}, {"head"}),
    ],
)
def test_freeze_parts(tiny_body: str, freeze: str, frozen_parts: set, trained_parts: set) -> None:
    res = _changed_after_one_step(_model(tiny_body), freeze)
    assert {_part(n) for n in res["changed"]} == trained_parts
    for n in res["same"]:
        # unchanged params are frozen parts, or ones without gradient (unused pooler / token types)
        assert _part(n) in frozen_parts or "pooler" in n or "token_type" in n or "word_embeddings" in n


def test_layernorm_only(tiny_body: str) -> None:
    res = _changed_after_one_step(_model(tiny_body), "layernorm-only")
    body_changed = {n for n in res["changed"] if n.startswith("body.")}
    assert body_changed and all("LayerNorm" in n for n in body_changed)
    assert any(n.startswith("embedder.") for n in res["changed"])
    assert "body.encoder.layer.0.attention.self.query.weight" in res["same"]


def test_non_attention(tiny_body: str) -> None:
    res = _changed_after_one_step(_model(tiny_body), "non-attention")
    assert not any("attention" in n for n in res["changed"])
    assert "body.encoder.layer.0.intermediate.dense.weight" in res["changed"]
    assert "body.encoder.layer.1.attention.self.key.weight" in res["same"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("bdy", "unknown part \\['bdy'\\]"), ("none+body", "'none' cannot be combined"),
     ("body+layernorm-only", "choose one of"), ("", "unknown part")],
)
def test_bad_freeze(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_freeze(spec)


def test_freezing_everything_is_an_error(tiny_body: str) -> None:
    with pytest.raises(ConfigError, match="freezes every parameter"):
        apply_freeze(_model(tiny_body), "embedder+body+head")
