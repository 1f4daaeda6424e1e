"""Fixtures of the harness tests: tiny local Swin and RoBERTa checkpoints (built here, nothing downloaded)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_swin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the folder of a tiny Swin (32x32 images, patch 4, embed_dim 24, two stages: widths 24 and 48)."""
    import torch
    from transformers import SwinConfig, SwinModel

    path = tmp_path_factory.mktemp("tiny-swin")
    torch.manual_seed(0)
    SwinModel(SwinConfig(image_size=32, patch_size=4, embed_dim=24, depths=[1, 1], num_heads=[2, 2],
                         window_size=4)).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the folder of a tiny RoBERTa (width 64, 2 layers, 80 position rows of which 78 are usable)."""
    import torch
    from transformers import RobertaConfig, RobertaModel

    path = tmp_path_factory.mktemp("tiny-roberta")
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=1200, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=128, max_position_embeddings=80)).save_pretrained(path)
    return str(path)
