from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from harness import BodyConfig, ConfigError
from harness.bodies import load_body
from harness.proxies import ProxyRequest, cache_dir, cache_path, get_proxy, get_proxy_spec


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
    assert cache_path(req) in files
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
    with pytest.raises(ConfigError, match=r"unknown proxy 'cifar'; expected one of \[.*'fake', .*'vocab'"):
        get_proxy_spec("cifar")


def test_file_proxy_needs_a_path() -> None:
    with pytest.raises(ConfigError, match="proxy 'text-file' needs a path: text-file:PATH"):
        get_proxy_spec("text-file")


def test_text_file_proxy_and_cache_invalidation(tiny_body: str, tmp_path) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    f = tmp_path / "t.tsv"
    f.write_text("pos\tgreat fun movie\nneg\tawful boring film\npos\tlovely\nneg\tbad\n")
    req = _req(body, name=f"text-file:{f}", samples=4, classes=2)
    p = get_proxy(req, body)
    assert p.x.shape == (4, 32) and sorted(p.y.tolist()) == [0, 0, 1, 1]
    before = cache_path(req)
    f.write_text(f.read_text() + "pos\tnice\n")
    assert cache_path(req) != before  # a changed file misses the cache


def test_malformed_text_file(tiny_body: str, tmp_path) -> None:
    from harness import DataError
    from harness.proxies import read_text_file

    f = tmp_path / "bad.tsv"
    f.write_text("no tab here\n")
    with pytest.raises(DataError, match="bad.tsv:1: expected label<TAB>text"):
        read_text_file(f)


def test_conll2003_reader(tmp_path) -> None:
    from harness.proxies import read_conll2003

    f = tmp_path / "train.txt"
    f.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n")
    assert read_conll2003(f) == (["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"])


def test_cifar10_binary_reader(tmp_path) -> None:
    from harness import DataError
    from harness.proxies import read_cifar10_bin

    rng = np.random.default_rng(0)
    rec = np.concatenate([rng.integers(0, 10, (5, 1)), rng.integers(0, 256, (5, 3072))], axis=1).astype(np.uint8)
    rec.tofile(tmp_path / "data_batch_1.bin")
    images, labels = read_cifar10_bin(tmp_path)
    assert images.shape == (5, 3, 32, 32) and labels.tolist() == rec[:, 0].tolist()
    (tmp_path / "data_batch_2.bin").write_bytes(b"xx")
    with pytest.raises(DataError, match="not a multiple of 3073"):
        read_cifar10_bin(tmp_path)


def test_fortunes_proxy(tiny_body: str, require) -> None:
    from harness.proxies import read_fortunes

    require(get_proxy_spec("fortunes").available(), "Debian package fortunes is not installed")
    texts, labels = read_fortunes()
    assert len(texts) > 1000 and len(set(labels)) > 5
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    p = get_proxy(_req(body, name="fortunes", samples=100), body)
    assert p.x.shape == (100, 32) and len(set(p.y.tolist())) > 3


def test_image_proxy_for_text_body_is_an_error(tiny_body: str) -> None:
    body = load_body(BodyConfig(path=tiny_body), seed=0)
    with pytest.raises(ConfigError, match="proxy 'digits' is an image dataset, but the body is a text model"):
        get_proxy(_req(body, name="digits"), body)


def test_vision_body_takes_image_proxies_and_refuses_text(tiny_vit: str) -> None:
    body = load_body(BodyConfig(path=tiny_vit), seed=0)
    assert body.modality == "vision"
    p = get_proxy(_req(body, name="digits", samples=50, entry="bypass"), body)
    assert p.x.shape == (50, 32) and len(set(p.y.tolist())) > 5
    fake = get_proxy(_req(body, name="fake", samples=50, entry="bypass"), body)
    assert fake.x.shape == (50, 32)
    with pytest.raises(ConfigError, match="proxy 'vocab' is a text dataset, but the body is a vision model"):
        get_proxy(_req(body, entry="bypass"), body)


def test_public_names_resolve_and_every_family_registers() -> None:
    import harness.proxies as proxies

    for name in proxies.__all__:
        assert getattr(proxies, name) is not None, name
    assert [s.name for s in proxies.list_proxies()] == [
        "vocab", "fake", "fortunes", "text-file", "conll2003", "digits", "fashion-mnist", "cifar10-bin"]
