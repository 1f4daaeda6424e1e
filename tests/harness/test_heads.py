"""Task heads chosen by output kind: pooled linear heads and the dense decoder's folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import BodyConfig, ConfigError
from harness.bodies import load_body
from harness.embedders import (
    HEADS,
    DenseDecoder,
    Embedder,
    HeadSpec,
    OrcaModel,
    PooledLinear,
    make_head,
    tokenisation,
)


def test_pooled_linear_is_linear_of_the_mean_token() -> None:
    head = PooledLinear(6, 3)
    h = torch.randn(2, 5, 6)
    torch.testing.assert_close(head(h), nn.functional.linear(h.mean(1), head.weight, head.bias))
    assert set(head.state_dict()) == {"weight", "bias"}  # same keys as the former nn.Linear head


def _identifying(decoder: DenseDecoder, n_tokens: int) -> torch.Tensor:
    """Set the decoder so a token t yields 100 t + (position inside its patch); return matching states."""
    with torch.no_grad():
        decoder.proj.weight.zero_()
        decoder.proj.weight[:, 0] = 100.0
        decoder.proj.bias.copy_(torch.arange(decoder.proj.out_features, dtype=torch.float32))
    h = torch.zeros(1, n_tokens, decoder.proj.in_features)
    h[0, :, 0] = torch.arange(n_tokens, dtype=torch.float32)
    return h


def test_dense_2d_folds_patches_back_in_place_and_crops() -> None:
    tok = tokenisation((1, 10, 10), 9, None)  # patch 4 -> grid 3x3 over the 12x12 padded input
    assert (tok.patch, tok.grid) == (4, (3, 3))
    dec = DenseDecoder(8, tok, (10, 10), (10, 10))
    out = dec(_identifying(dec, 9))
    assert out.shape == (1, 10, 10)
    rows, cols = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    expected = 100.0 * ((rows // 4) * 3 + cols // 4) + (rows % 4) * 4 + cols % 4
    torch.testing.assert_close(out[0], expected.float())


def test_dense_1d_and_resizing() -> None:
    tok = tokenisation((2, 11), 4, None)  # patch 3 -> 4 tokens over 12
    dec = DenseDecoder(8, tok, (11,), (11,))
    out = dec(_identifying(dec, 4))
    torch.testing.assert_close(out[0], (100.0 * (torch.arange(11) // 3) + torch.arange(11) % 3).float())
    assert DenseDecoder(8, tok, (11,), (20,))(torch.randn(3, 4, 8)).shape == (3, 20)
    tok2 = tokenisation((3, 9, 9), 25, None)
    assert DenseDecoder(8, tok2, (9, 9), (5, 7))(torch.randn(2, tok2.tokens, 8)).shape == (2, 5, 7)


def test_make_head_registry() -> None:
    tok = tokenisation((1, 8, 8), 4, None)
    assert isinstance(make_head("classes", HeadSpec(8, 5, tok, (1, 8, 8), ())), PooledLinear)
    multi = make_head("multilabel", HeadSpec(8, 36, tok, (1, 8, 8), (36,)))
    assert isinstance(multi, PooledLinear) and multi.out_features == 36
    assert isinstance(make_head("dense", HeadSpec(8, 1, tok, (1, 8, 8), (8, 8))), DenseDecoder)
    assert set(HEADS) == {"classes", "multilabel", "dense"}
    with pytest.raises(ConfigError, match=r"unknown task output 'boxes'; expected one of \['classes', 'dense'"):
        make_head("boxes", HeadSpec(8, 1, tok, (1, 8, 8), ()))
    with pytest.raises(ConfigError, match="one channel per position is supported"):
        make_head("dense", HeadSpec(8, 1, tok, (1, 8, 8), (2, 8, 8)))


def test_orca_model_with_each_head(tiny_body: str) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    tok = tokenisation((3, 9, 9), 25, None)
    x = torch.randn(4, 3, 9, 9)
    for output, n, target, shape in (("classes", 5, (), (4, 5)), ("multilabel", 7, (7,), (4, 7)),
                                     ("dense", 1, (9, 9), (4, 9, 9))):
        head = make_head(output, HeadSpec(body.dim, n, tok, (3, 9, 9), target))
        model = OrcaModel(Embedder((3, 9, 9), body.dim, tok, "body"), body, head=head)
        assert model(x).shape == shape
    with pytest.raises(ValueError, match="needs num_outputs or a head"):
        OrcaModel(Embedder((3, 9, 9), body.dim, tok, "body"), body)
