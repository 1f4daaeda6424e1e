"""Fixtures of the study-engine tests: storages of every supported kind, fake-trial settings."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

STORAGE_KINDS = ("sqlite", "journal")
"""The file storages; PostgreSQL (a server, see the ``pg_url`` fixture) is the third supported kind."""


def storage_url(kind: str, directory: Path) -> str:
    """Return a storage URL of ``kind`` in ``directory``."""
    return {"sqlite": f"sqlite:///{directory / 'study.db'}",
            "journal": f"journal:///{directory / 'study.log'}"}[kind]


@pytest.fixture(params=[*STORAGE_KINDS, pytest.param("postgres", marks=pytest.mark.postgres)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh storage URL, once per supported backend (PostgreSQL: a fresh database, dropped afterwards)."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return storage_url(request.param, tmp_path)


@pytest.fixture(params=STORAGE_KINDS)
def storage_kind(request: pytest.FixtureRequest) -> str:
    """Each supported backend's name."""
    return str(request.param)


@pytest.fixture
def fake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake trials: instant, 3 epochs, marker files in a fresh directory (returned)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("ORCA_ABLATE_FAKE_DIR", str(markers))
    monkeypatch.setenv("ORCA_ABLATE_FAKE_SECONDS", "0")
    monkeypatch.setenv("ORCA_ABLATE_FAKE_EPOCHS", "3")
    return markers


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a spec mapping (or text) to a YAML file; return its path."""
    def write(data: dict[str, Any] | str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path
    return write


@pytest.fixture
def cli_env(fake_env: Path) -> Iterator[dict[str, str]]:
    """Environment for ``python -m studies.cli`` subprocesses: this checkout first on the path."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and Path(p).is_dir()] + [str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    yield env


_SMALL = {
    "name": "small",
    "tasks": ["digits", "synthetic-1d"],
    "seeds": [0, 1],
    "factors": {"embedder.epochs": [0, 2], "finetune.freeze": ["none", "body"]},
    "base": {"finetune.epochs": 3},
}
"""A 16-cell spec used across the engine tests."""


@pytest.fixture
def small() -> dict[str, Any]:
    """A fresh copy of a 16-cell spec mapping: 2 tasks x 2 x 2 levels x 2 seeds."""
    return copy.deepcopy(_SMALL)
