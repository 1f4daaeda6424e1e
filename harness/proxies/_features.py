"""Features of a body's own inputs, shared by the proxy families: vocabulary tokens, texts, images.

Every function returns ``(n, D)`` features in the space the embedder's mean-pooled
tokens live in: the body's word embeddings for ``entry="body"``, the output of
its embedding module for ``"bypass"`` (vision bodies: mean-pooled patch embeddings).
"""

from __future__ import annotations

import numpy as np
import torch

from ..bodies import Body
from ._registry import ProxyRequest

__all__ = ["embed_images", "embed_token_ids", "labelled_images", "labelled_texts", "reference_features",
           "subsample", "text_features", "vocab_ids"]


def vocab_ids(body: Body, n: int, rng: np.random.Generator) -> torch.Tensor:
    """Return (min(n, V'),) int64 sorted distinct vocabulary ids, drawn past the special and unused tokens."""
    vocab = body.word_embeddings.shape[0]
    first = min(1000, vocab // 10)  # BERT-like vocabularies keep special and unused tokens first
    ids = rng.choice(np.arange(first, vocab), size=min(n, vocab - first), replace=False)
    return torch.as_tensor(np.sort(ids), dtype=torch.int64)


def reference_features(body: Body, n: int, rng: np.random.Generator, entry: str) -> torch.Tensor:
    """Return (n, D) features of the body's own inputs in the space the embedder's tokens live in.

    Text bodies: single vocabulary tokens (word embeddings for ``entry="body"``, the
    embedding module's output for ``"bypass"``). Vision bodies: mean-pooled patch
    embeddings of Gaussian-noise images.
    """
    if body.modality == "vision":
        cfg = body.model.config
        size = int(getattr(cfg, "image_size", 224))
        images = torch.from_numpy(rng.standard_normal((n, int(getattr(cfg, "num_channels", 3)), size, size)))
        return embed_images(body, images.float())
    ids = vocab_ids(body, n, rng)
    if entry == "body":
        return body.word_embeddings[ids]
    return embed_token_ids(body, ids[:, None], torch.ones(len(ids), 1))


@torch.no_grad()
def embed_token_ids(body: Body, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Return (n, D) mask-weighted means of the body's embedding-module outputs for ids (n, T), mask (n, T)."""
    was_training = body.model.training
    body.model.eval()
    outs = []
    for i in range(0, len(ids), batch):
        h = body.model.embeddings(input_ids=ids[i:i + batch])
        m = mask[i:i + batch, :, None].to(h.dtype)
        outs.append((h * m).sum(1) / m.sum(1).clamp_min(1))
    body.model.train(was_training)
    return torch.cat(outs)


@torch.no_grad()
def embed_images(body: Body, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Return (n, D) mean-pooled patch embeddings of images (n, C, H, W), resized to the body's input."""
    import torch.nn.functional as F

    cfg = body.model.config
    size, channels = int(getattr(cfg, "image_size", 224)), int(getattr(cfg, "num_channels", 3))
    was_training = body.model.training
    body.model.eval()
    outs = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float()
        if x.shape[1] != channels:
            x = x.mean(1, keepdim=True).expand(-1, channels, -1, -1)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        outs.append(body.embed_pixels(x).mean(1))
    body.model.train(was_training)
    return torch.cat(outs)


def text_features(body: Body, texts: list[str], entry: str) -> torch.Tensor:
    """Return (n, D) features of texts: mean over their tokens (no special tokens), in the entry's space."""
    tok = body.tokenizer()
    enc = tok(texts, add_special_tokens=False, truncation=True, max_length=32, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"].float()
    if entry == "body":
        m = mask[:, :, None]
        return (body.word_embeddings[ids] * m).sum(1) / m.sum(1).clamp_min(1)
    return embed_token_ids(body, ids, mask)


def subsample(n_total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Return (min(n, n_total),) sorted distinct indices into ``range(n_total)``."""
    return np.sort(rng.permutation(n_total)[: min(n, n_total)])


def labelled_texts(req: ProxyRequest, body: Body, texts: list[str], labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return x (n, D) float32 and y (n,) int64 (label names in sorted order) of a seeded subsample of texts."""
    rng = np.random.default_rng(req.seed)
    idx = subsample(len(texts), req.samples, rng)
    names = sorted(set(labels))
    y = np.array([names.index(labels[i]) for i in idx], dtype=np.int64)
    x = text_features(body, [texts[i] for i in idx], req.entry).numpy().astype(np.float32)
    return x, y


def labelled_images(req: ProxyRequest, body: Body, images: np.ndarray,
                    labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return x (n, D) float32 and y (n,) int64 of a seeded subsample of images (N, C, H, W), standardised."""
    rng = np.random.default_rng(req.seed)
    idx = subsample(len(images), req.samples, rng)
    x = torch.from_numpy(images[idx].astype(np.float32))
    x = (x - x.mean()) / x.std().clamp_min(1e-8)
    return embed_images(body, x).numpy().astype(np.float32), labels[idx].astype(np.int64)
