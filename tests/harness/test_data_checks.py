"""Data that cannot make a sound trial are refused with a clear DataError (or a warning), never a traceback."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from harness import DataError, TrialConfig, check_data
from harness.config import DataConfig
from harness.tasks import check_task_data, load_task


def _npz(path: Path, **overrides: object) -> str:
    arrays = {"x_train": np.random.default_rng(0).normal(size=(12, 1, 8)), "y_train": np.arange(12) % 2,
              "x_test": np.zeros((4, 1, 8)), "y_test": np.arange(4) % 2, **overrides}
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"y_train": np.array(list("abababababab"))}, "labels integers"),
    ({"x_test": np.zeros((4, 2, 8))}, "same channels and length"),
    ({"x_train": np.zeros((12, 1, 8), complex)}, "real numbers"),
    ({"y_test": np.zeros(3, int)}, "with the same N"),
])
def test_npz_headers_are_checked_without_loading(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_task_data(_npz(tmp_path / "d.npz", **overrides), DataConfig())


def test_loading_refuses_one_class_and_warns_about_classes_only_in_test(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs at least two"):
        load_task(_npz(tmp_path / "one.npz", y_train=np.zeros(12, int)), DataConfig(), 0)
    with pytest.warns(UserWarning, match=r"classes \[2\] appear in validation/test but never in training"):
        load_task(_npz(tmp_path / "unseen.npz", y_test=np.array([0, 1, 2, 1])), DataConfig(), 0)
    with pytest.raises(DataError, match="labels must be integer classes"):
        load_task(_npz(tmp_path / "s.npz", y_train=np.array(list("abababababab"))), DataConfig(), 0)


def test_a_pickled_checkpoint_is_refused_and_never_runs(tmp_path: Path) -> None:
    from transformers import BertConfig

    from harness.bodies import load_body

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
               vocab_size=50).save_pretrained(tmp_path)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    check_data(TrialConfig().override({"body.path": str(tmp_path)}))  # config.json is fine
    with pytest.raises(DataError, match="refused \\(weights-only loading\\)"):
        load_body(TrialConfig().override({"body.path": str(tmp_path)}).body, 0)
    assert not marker.exists()
