from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from harness import BodyConfig, ConfigError
from harness.bodies import load_body
from harness.proxies import ProxyRequest, cache_dir, get_proxy, get_proxy_spec


def _req(body, name: str = "vocab", **kw) -> ProxyRequest:
    fields = dict(name=name, samples=200, classes=5, entry="body", seed=0, body_path=body.path, pretrained=True)
    fields.update(kw)
    return ProxyRequest(**fields)


def test_vocab_proxy_is_word_embeddings_labelled_by_kmeans(tiny_body: str) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    p = get_proxy(_req(body), body)
    assert p.x.shape == (200, 32) and p.y.shape == (200,)
    assert set(p.y.tolist()) == set(range(5))
    # every proxy row is one of the body's word-embedding rows
    nearest = torch.cdist(p.x, body.word_embeddings).argmin(dim=1)
    torch.testing.assert_close(p.x, body.word_embeddings[nearest], atol=1e-6, rtol=0)


def test_bypass_vocab_lives_after_the_embedding_layernorm(tiny_body: str) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    p = get_proxy(_req(body, entry="bypass"), body)
    np.testing.assert_allclose(p.x.mean(1).abs().max().item(), 0.0, atol=1e-4)  # LayerNorm output, bias 0
    np.testing.assert_allclose(p.x.std(1).mean().item(), 1.0, atol=0.05)


def test_fake_proxy_matches_embedding_scale_with_random_labels(tiny_body: str) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    p = get_proxy(_req(body, name="fake", samples=2000), body)
    np.testing.assert_allclose(p.x.std().item(), body.word_embeddings.std().item(), rtol=0.1)
    counts = np.bincount(p.y.numpy(), minlength=5)
    assert counts.min() > 300  # roughly uniform random labels


def test_proxy_cache_hit_and_keys(tiny_body: str) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    req = _req(body)
    first = get_proxy(req, body)
    files = list((cache_dir() / "proxies").glob("vocab-*.npz"))
    assert any(req.key() in f.name for f in files)
    mtime = {f: os.stat(f).st_mtime_ns for f in files}
    again = get_proxy(req, body)
    assert {f: os.stat(f).st_mtime_ns for f in files} == mtime  # read, not rewritten
    torch.testing.assert_close(first.x, again.x)
    # what changes the features changes the key; a pretrained body ignores the seed for vocab
    assert req.key() != _req(body, pretrained=False).key()
    assert req.key() == _req(body, seed=3).key()
    assert _req(body, pretrained=False).key() != _req(body, pretrained=False, seed=3).key()
    assert req.key() != _req(body, samples=300).key()


def test_unknown_proxy_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown proxy 'cifar'; expected one of \['fake', .*'vocab'"):
        get_proxy_spec("cifar")
