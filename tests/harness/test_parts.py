from __future__ import annotations

import pytest
import torch

from harness import ConfigError, TrialConfig, TrialParts, build_parts


def _cfg(tiny_body: str, **overrides: object) -> TrialConfig:
    base = {"task": "synthetic-2d", "body.path": tiny_body, "embedder.proxy_samples": 60, "embedder.proxy_classes": 4}
    return TrialConfig().override({**base, **overrides})


def test_parts_fit_together(tiny_body: str) -> None:
    parts = build_parts(_cfg(tiny_body))
    assert isinstance(parts, TrialParts)
    assert parts.model.embedder is parts.embedder and parts.model.head is parts.head
    assert parts.model.body is parts.body.model
    assert parts.proxy is not None and parts.proxy.x.shape == (60, parts.body.dim)
    assert parts.tokenisation.tokens == 4 and parts.init_copied
    out = parts.model(parts.task.x_train[:3])
    assert out.shape == (3, parts.task.num_classes)


def test_initial_weights_depend_on_the_seed_only(tiny_body: str) -> None:
    a = build_parts(_cfg(tiny_body, seed=1), with_proxy=False)
    b = build_parts(_cfg(tiny_body, seed=1, **{"embedder.epochs": 7, "embedder.proxy": "fake"}))
    c = build_parts(_cfg(tiny_body, seed=2), with_proxy=False)
    assert a.proxy is None
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=0, atol=0)
    assert not torch.equal(a.embedder.proj.weight, c.embedder.proj.weight)


def test_entry_must_suit_the_body(tiny_vit: str) -> None:
    with pytest.raises(ConfigError, match="embedder.entry='body' does not suit a vision body"):
        build_parts(_cfg(tiny_vit), with_proxy=False)
