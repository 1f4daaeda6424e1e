"""Swin and RoBERTa bodies, built tiny in the test (tests/harness/conftest.py), loaded by path."""

from __future__ import annotations

import json

import pytest
import torch

from harness import ConfigError, TrialConfig, run_trial
from harness.bodies import load_body
from harness.config import BodyConfig
from harness.embedders import Embedder, HeadSpec, OrcaModel, make_head, tokenisation
from harness.parts import build_parts, output_tokenisation
from studies.cli import main

_SMALL = {"embedder.epochs": 2, "embedder.samples": 80, "embedder.proxy_samples": 80, "embedder.proxy_classes": 4,
          "finetune.epochs": 1}
_SWIN = {"embedder.entry": "bypass", "embedder.proxy": "fake"}


def test_swin_body_has_separate_token_and_output_widths(tiny_swin: str) -> None:
    body = load_body(BodyConfig(path=tiny_swin), seed=0)
    assert (body.in_dim, body.dim, body.downsample, body.image_size, body.patch_size) == (24, 48, 2, 32, 4)
    assert body.modality == "vision" and body.kind.entries == ("bypass",) and not body.kind.positions


def test_swin_encode_is_the_checkpoints_own_forward(tiny_swin: str) -> None:
    body = load_body(BodyConfig(path=tiny_swin), seed=0)
    body.model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours = body.encode(body.embed_pixels(x), (8, 8))
        theirs = body.model(pixel_values=x).last_hidden_state
    assert ours.shape == (3, 16, 48)
    torch.testing.assert_close(ours, theirs)


def test_swin_layers_keeps_the_first_stages(tiny_swin: str) -> None:
    body = load_body(BodyConfig(path=tiny_swin, layers=1), seed=0)
    assert (body.in_dim, body.dim, body.downsample) == (24, 24, 1) and len(body.model.encoder.layers) == 1
    out = body.encode(torch.randn(2, 64, 24), (8, 8))
    assert out.shape == (2, 64, 24)
    with pytest.raises(ConfigError, match="the body has 2 stages"):
        load_body(BodyConfig(path=tiny_swin, layers=3), seed=0)


def test_swin_trial_resizes_to_the_body_image_size(tiny_swin: str) -> None:
    cfg = TrialConfig().override({"task": "synthetic-2d", "body.path": tiny_swin, **_SWIN, **_SMALL})
    parts = build_parts(cfg)
    assert parts.embedder.resize == (32, 32) and parts.embedder.pos is None
    assert parts.tokenisation.grid == (8, 8) and parts.tokenisation.patch == 4  # ORCA: the body's own patch
    assert parts.init_copied == ["embeddings.norm -> norm"]
    r = run_trial(cfg)
    assert 0.0 <= r.test_score <= 1.0 and len(r.otdd_curve) == 3 and r.details["tokens"] == 64


def test_swin_dense_head_decodes_the_merged_grid(tiny_swin: str) -> None:
    body = load_body(BodyConfig(path=tiny_swin), seed=0)
    tok = tokenisation((1, 32, 32), 64, None)
    out_tok = output_tokenisation(tok, body)
    assert out_tok.grid == (4, 4) and out_tok.patch == 8
    head = make_head("dense", HeadSpec(body.dim, 1, out_tok, (1, 32, 32), (20, 20)))
    emb = Embedder((1, 13, 13), body.in_dim, tok, "bypass", resize=(32, 32), positions=False)
    assert OrcaModel(emb, body, head=head)(torch.randn(2, 1, 13, 13)).shape == (2, 20, 20)


def test_swin_refuses_1d_tasks(tiny_swin: str) -> None:
    cfg = TrialConfig().override({"task": "synthetic-1d", "body.path": tiny_swin, **_SWIN, **_SMALL})
    with pytest.raises(ConfigError, match="use a text body"):
        build_parts(cfg)


def test_roberta_positions_start_after_the_padding_row(tiny_roberta: str) -> None:
    body = load_body(BodyConfig(path=tiny_roberta), seed=0)
    assert body.position_offset == 2 and body.max_positions == 78 and body.dim == body.in_dim == 64
    cfg = TrialConfig().override({"task": "synthetic-1d", "body.path": tiny_roberta, "embedder.entry": "bypass",
                                  **_SMALL})
    parts = build_parts(cfg)
    table = parts.body.model.embeddings.position_embeddings.weight
    t = parts.tokenisation.tokens
    torch.testing.assert_close(parts.embedder.pos[0], table[2:2 + t])


@pytest.mark.parametrize("entry", ["body", "bypass"])
def test_roberta_trial_runs(tiny_roberta: str, entry: str) -> None:
    cfg = TrialConfig().override({"task": "synthetic-1d", "body.path": tiny_roberta, "embedder.entry": entry,
                                  **_SMALL})
    r = run_trial(cfg)
    assert 0.0 <= r.test_score <= 1.0 and all(v > 0 for v in r.otdd_curve)


@pytest.mark.parametrize(("fixture", "task", "extra"), [("tiny_swin", "synthetic-2d", ["embedder.entry=bypass",
                                                                                    "embedder.proxy=fake"]),
                                                        ("tiny_roberta", "synthetic-1d", [])])
def test_cli_trial_with_a_local_body_folder(fixture: str, task: str, extra: list[str],
                                            request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    path = request.getfixturevalue(fixture)
    sets = [f"{k}={v}" for k, v in _SMALL.items()]
    assert main(["trial", "--task", task, "--json", "--set", f"body.path={path}", *extra, *sets]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["config"]["body"]["path"] == path and obj["config"]["task"] == task
