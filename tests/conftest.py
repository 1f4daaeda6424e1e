"""Shared fixtures: a tiny local BERT body (no downloads) and an isolated cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip outside CI when ``condition`` is false; fail in CI, where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI (CI=true): {reason}")
    pytest.skip(reason)


@pytest.fixture
def require():  # noqa: ANN201 - returns the `need` function
    """Return ``need(condition, reason)``: skip outside CI, fail in CI (``CI=true``)."""
    return need


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCA_ABLATE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_body(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the folder of a tiny BERT checkpoint (width 32, 2 layers) saved locally."""
    import torch
    from transformers import BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    cfg = BertConfig(vocab_size=1200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(1234)  # not a trial seed: a random body must differ from this one
    BertModel(cfg).save_pretrained(path)
    return str(Path(path))


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Return the folder of a tiny ViT checkpoint (width 32, 1 layer, 16x16 images) saved locally."""
    import torch
    from transformers import ViTConfig, ViTModel

    path = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=16, patch_size=8, num_channels=3)).save_pretrained(path)
    return str(path)


PG_ADMIN_URL = os.environ.get("ORCA_ABLATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
"""The server the PostgreSQL tests use; each test gets a fresh database on it, dropped afterwards."""


@pytest.fixture
def pg_url(require):  # noqa: ANN201 - yields a SQLAlchemy URL
    """Yield the URL of a fresh, empty PostgreSQL database; drop it afterwards.

    Skips outside CI when the server is unreachable; fails in CI (``CI=true``).
    """
    import uuid

    try:
        import psycopg
    except ImportError:
        require(False, "psycopg is not installed")
        return
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        require(False, f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
        return
    name = f"orca_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        # A fresh connection: a test may have restarted the server, which ends every session.
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=30) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
