"""Fixtures of the analysis tests: synthetic studies in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_synthetic import build_study


@pytest.fixture
def make_study(tmp_path: Path) -> Callable[..., str]:
    """Return a builder of synthetic SQLite studies in this test's temporary directory."""

    def make(name: str = "s", **kwargs: Any) -> str:
        return build_study(tmp_path, name, **kwargs)

    return make
