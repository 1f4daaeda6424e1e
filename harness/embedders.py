"""ORCA's embedders (Conv1d / Conv2d patching + LayerNorm), the head, and the whole model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .bodies import Body
from .errors import ConfigError

__all__ = ["ENTRIES", "Embedder", "OrcaModel", "Tokenisation", "tokenisation"]

ENTRIES = ("body", "bypass")
"""How tokens enter the body: through its embedding module, or straight into the encoder (ORCA)."""


@dataclass(frozen=True)
class Tokenisation:
    """How inputs are cut into tokens: patch size and the resulting token grid."""

    patch: int
    grid: tuple[int, ...]
    """Tokens per spatial axis: ``(T,)`` for 1D, ``(Th, Tw)`` for 2D."""

    @property
    def tokens(self) -> int:
        """Return the number of tokens per input."""
        return math.prod(self.grid)


def tokenisation(input_shape: tuple[int, ...], tokens: int, patch: int | None) -> Tokenisation:
    """Return the patching of an input ``(C, L)`` or ``(C, H, W)`` under a token budget or patch size."""
    spatial = input_shape[1:]
    if patch is None:
        if tokens < 1:
            raise ConfigError(f"embedder.tokens={tokens}: give a positive token budget")
        per_axis = max(1, int(math.floor(tokens ** (1 / len(spatial)) + 1e-9)))
        patch = max(math.ceil(s / per_axis) for s in spatial)
    if patch < 1:
        raise ConfigError(f"embedder.patch={patch}: give a positive patch size")
    return Tokenisation(patch=patch, grid=tuple(math.ceil(s / patch) for s in spatial))


class Embedder(nn.Module):
    """Map inputs to token embeddings of the body's width.

    x : (B, C, L) or (B, C, H, W) -> (B, T, D). Conv patching (kernel = stride =
    patch, inputs zero-padded to a multiple of the patch), then LayerNorm. With
    ``entry="body"`` the LayerNorm's affine maps tokens to the word-embedding
    distribution and the body adds positions; with ``entry="bypass"`` (ORCA) the
    embedder adds its own position embeddings and feeds the encoder directly.
    """

    def __init__(self, input_shape: tuple[int, ...], dim: int, tok: Tokenisation, entry: str) -> None:
        super().__init__()
        if entry not in ENTRIES:
            raise ConfigError(f"unknown embedder.entry {entry!r}; expected one of {list(ENTRIES)}")
        channels = input_shape[0]
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[len(input_shape) - 1]
        self.tok = tok
        self.entry = entry
        self.proj = conv(channels, dim, kernel_size=tok.patch, stride=tok.patch)
        self.norm = nn.LayerNorm(dim)
        self.pos = nn.Parameter(torch.zeros(1, tok.tokens, dim)) if entry == "bypass" else None
        if self.pos is not None:
            nn.init.normal_(self.pos, std=0.02)

    def init_from_body(self, body: Body, pretrained: bool) -> list[str]:
        """Initialise norm/positions from the body (pretrained) or its scale (random); return what was copied."""
        word = body.word_embeddings.to(self.norm.weight.dtype)
        copied: list[str] = []
        with torch.no_grad():
            if self.entry == "body":
                if pretrained:  # tokens start at the per-dimension moments of the word embeddings
                    self.norm.weight.copy_(word.std(0))
                    self.norm.bias.copy_(word.mean(0))
                    copied.append("word-embedding moments -> norm")
                else:
                    self.norm.weight.fill_(float(word.std()))
                    self.norm.bias.zero_()
            elif pretrained:
                emb = body.model.embeddings
                if hasattr(emb, "LayerNorm"):
                    self.norm.load_state_dict(emb.LayerNorm.state_dict())
                    copied.append("embeddings.LayerNorm -> norm")
                pe = getattr(emb, "position_embeddings", None)
                if pe is not None and self.pos is not None and pe.weight.shape[0] >= self.pos.shape[1]:
                    self.pos.copy_(pe.weight[: self.pos.shape[1]].unsqueeze(0))
                    copied.append("embeddings.position_embeddings -> pos")
        return copied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return token embeddings: (B, C, *S) -> (B, T, D)."""
        pads: list[int] = []
        for size in reversed(x.shape[2:]):
            pads += [0, (-size) % self.tok.patch]
        if any(pads):
            x = F.pad(x, pads)
        h = self.proj(x).flatten(2).transpose(1, 2)
        h = self.norm(h)
        if self.pos is not None:
            h = h + self.pos
        return h


class OrcaModel(nn.Module):
    """Embedder + body + head: x (B, C, *S) -> logits (B, num_outputs)."""

    def __init__(self, embedder: Embedder, body: Body, num_outputs: int) -> None:
        super().__init__()
        self.embedder = embedder
        self.body = body.model
        self._body = body
        self.head = nn.Linear(body.dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_outputs) from mean-pooled body outputs."""
        tokens = self.embedder(x)
        hidden = self._body.embed(tokens) if self.embedder.entry == "body" else tokens
        out = self._body.encode(hidden)
        return self.head(out.mean(dim=1))
