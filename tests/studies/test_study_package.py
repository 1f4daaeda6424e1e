"""The package surface: every public name resolves; storage URLs; shipped specs pass the harness's checks."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness
import studies
from studies import DEFAULT_STORAGE, StorageError, load_spec, open_storage, shipped_specs
from harness.contract import journal_path


def test_every_public_name_resolves() -> None:
    for name in studies.__all__:
        assert getattr(studies, name) is not None, name
    with pytest.raises(AttributeError):
        getattr(studies, "nope")


def test_journal_urls() -> None:
    assert journal_path("journal:///abs/dir/s.log") == Path("/abs/dir/s.log")
    assert journal_path("journal:rel/s.log") == Path("rel/s.log")
    assert journal_path("runs/s.jsonl") == Path("runs/s.jsonl")
    assert journal_path("sqlite:///x.log") is None
    assert journal_path(DEFAULT_STORAGE) is None


@pytest.mark.parametrize(("url", "message"), [
    ("study.db", "expected an Optuna storage URL"),
    ("journal:", "name the file"),
    ("journal:///no/such/dir/s.log", "directory '/no/such/dir' does not exist"),
    ("sqlite:////no/such/dir/s.db", "directory of '/no/such/dir/s.db' does not exist"),
])
def test_bad_storage_urls(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message):
        open_storage(url)


def test_read_only_commands_do_not_create_storage(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such SQLite file"):
        open_storage(f"sqlite:///{tmp_path / 'none.db'}", must_exist=True)
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("name", ["quickstart", "proxy", "embedder-epochs", "freezing", "pretraining"])
def test_shipped_specs_pass_the_harness_checks(name: str) -> None:
    assert name in shipped_specs()
    load_spec(name)  # default validator: harness.validate_config
