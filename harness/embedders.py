"""ORCA's embedders (Conv1d / Conv2d patching + LayerNorm), the task heads, and the whole model.

Heads are chosen by the task's output kind from :data:`HEADS`: ``classes`` and
``multilabel`` mean-pool the body's tokens into a linear layer (logits for
cross-entropy or per-label BCE); ``dense`` decodes every token back into its
patch of the input grid and resizes the map to the target's size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .bodies import Body
from .errors import ConfigError

__all__ = ["ENTRIES", "HEADS", "DenseDecoder", "Embedder", "HeadSpec", "OrcaModel", "PooledLinear", "Tokenisation",
           "make_head", "tokenisation"]

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
    embedder adds its own position embeddings (unless ``positions=False``: Swin)
    and feeds the encoder directly. With ``resize`` (Swin: the body's image size,
    as ORCA), inputs are first resized bilinearly to that spatial size.
    """

    def __init__(self, input_shape: tuple[int, ...], dim: int, tok: Tokenisation, entry: str, *,
                 resize: tuple[int, ...] | None = None, positions: bool = True) -> None:
        super().__init__()
        if entry not in ENTRIES:
            raise ConfigError(f"unknown embedder.entry {entry!r}; expected one of {list(ENTRIES)}")
        channels = input_shape[0]
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[len(input_shape) - 1]
        self.tok = tok
        self.entry = entry
        self.resize = tuple(resize) if resize is not None else None
        self.proj = conv(channels, dim, kernel_size=tok.patch, stride=tok.patch)
        self.norm = nn.LayerNorm(dim)
        self.pos = nn.Parameter(torch.zeros(1, tok.tokens, dim)) if entry == "bypass" and positions else None
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
                for name in ("LayerNorm", "norm"):  # BERT-like / Swin
                    norm = getattr(emb, name, None)
                    if isinstance(norm, nn.LayerNorm) and norm.normalized_shape == self.norm.normalized_shape:
                        self.norm.load_state_dict(norm.state_dict())
                        copied.append(f"embeddings.{name} -> norm")
                        break
                pe = getattr(emb, "position_embeddings", None)
                # BERT-like: an Embedding (positions, D), RoBERTa's from row pad_token_id + 1;
                # ViT-like: a Parameter (1, 1 + patches, D), CLS first
                table = (pe.weight[body.position_offset:] if isinstance(pe, torch.nn.Embedding)
                         else pe[0, 1:] if pe is not None else None)
                if table is not None and self.pos is not None and table.shape[0] >= self.pos.shape[1]:
                    self.pos.copy_(table[: self.pos.shape[1]].unsqueeze(0))
                    copied.append("embeddings.position_embeddings -> pos")
        return copied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return token embeddings: (B, C, *S) -> (B, T, D)."""
        if self.resize is not None and tuple(x.shape[2:]) != self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
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


class PooledLinear(nn.Linear):
    """Mean-pool the tokens, then a linear layer: (B, T, D) -> (B, K) logits."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Return logits (B, K) of the mean token of ``h`` (B, T, D)."""
        return super().forward(h.mean(dim=1))


class DenseDecoder(nn.Module):
    """Decode the token grid into one map: (B, T, D) -> (B, L') or (B, H', W').

    Each token's vector is mapped linearly to the ``patch`` (1D) or ``patch²``
    (2D) values of the input region it was cut from; the patches are folded back
    into the padded input grid, cropped to the input's size and, when the target
    has another size, resized (linear / bilinear interpolation).
    """

    def __init__(self, dim: int, tok: Tokenisation, spatial: tuple[int, ...], target: tuple[int, ...]) -> None:
        super().__init__()
        if len(target) != len(tok.grid) or len(spatial) != len(tok.grid):
            raise ConfigError(f"a dense head maps a {len(tok.grid)}D token grid to a {len(tok.grid)}D map; the "
                              f"targets have shape {target} (one channel per position is supported)")
        self.tok, self.spatial, self.target = tok, tuple(spatial), tuple(target)
        self.proj = nn.Linear(dim, tok.patch ** len(tok.grid))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Return the decoded maps (B, *target) from token states ``h`` (B, T, D)."""
        b, p = h.shape[0], self.tok.patch
        v = self.proj(h)
        if len(self.tok.grid) == 1:
            out = v.reshape(b, self.tok.grid[0] * p)[:, : self.spatial[0]]
            mode = "linear"
        else:
            th, tw = self.tok.grid
            out = v.reshape(b, th, tw, p, p).permute(0, 1, 3, 2, 4).reshape(b, th * p, tw * p)
            out = out[:, : self.spatial[0], : self.spatial[1]]
            mode = "bilinear"
        if tuple(out.shape[1:]) != self.target:
            out = F.interpolate(out.unsqueeze(1), size=self.target, mode=mode, align_corners=False).squeeze(1)
        return out


@dataclass(frozen=True)
class HeadSpec:
    """What a head needs to know: body width, output count, tokenisation and the input / target shapes."""

    dim: int
    num_outputs: int
    tok: Tokenisation
    input_shape: tuple[int, ...]
    """One input, ``(C, L)`` or ``(C, H, W)``."""
    target_shape: tuple[int, ...]
    """One target, ``()`` for a class, ``(K,)`` for labels, ``(L',)`` or ``(H', W')`` for a map."""


HEADS: dict[str, Callable[[HeadSpec], nn.Module]] = {
    "classes": lambda s: PooledLinear(s.dim, s.num_outputs),
    "multilabel": lambda s: PooledLinear(s.dim, s.num_outputs),
    "dense": lambda s: DenseDecoder(s.dim, s.tok, s.input_shape[1:], s.target_shape),
}
"""Task output kind -> head factory."""


def make_head(output: str, spec: HeadSpec) -> nn.Module:
    """Return the head for a task output kind; raise ConfigError listing the kinds when unknown."""
    if output not in HEADS:
        raise ConfigError(f"unknown task output {output!r}; expected one of {sorted(HEADS)}")
    return HEADS[output](spec)


class OrcaModel(nn.Module):
    """Embedder + body + head: x (B, C, *S) -> head outputs, e.g. logits (B, K) or maps (B, *S').

    Without ``head``, the head is a :class:`PooledLinear` with ``num_outputs`` classes.
    """

    def __init__(self, embedder: Embedder, body: Body, num_outputs: int | None = None,
                 head: nn.Module | None = None) -> None:
        super().__init__()
        if head is None:
            if num_outputs is None:
                raise ValueError("OrcaModel needs num_outputs or a head")
            head = PooledLinear(body.dim, num_outputs)  # the body's output width (Swin: not its token width)
        self.embedder = embedder
        self.body = body.model
        self._body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the head's outputs for the body's last hidden states of the embedded ``x``."""
        tokens = self.embedder(x)
        hidden = self._body.embed(tokens) if self.embedder.entry == "body" else tokens
        return self.head(self._body.encode(hidden, self.embedder.tok.grid))
