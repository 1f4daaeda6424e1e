"""NAS-Bench-360 loaders on small files written in the official formats, and one trial per task."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from harness import DataConfig, DataError, TrialConfig, run_trial
from harness.tasks import list_tasks, load_task
from harness.tasks._base import LoadContext
from harness.tasks._nasbench import (
    load_darcy_flow,
    load_ecg,
    load_ninapro,
    load_satellite,
    slide_windows,
)
from studies.cli import main

RNG = np.random.default_rng(360)


# -- writers: the official formats, at toy sizes -------------------------------------------------------------


def write_satellite(root: Path, n_train: int = 96, n_test: int = 48) -> None:
    """``np.save`` of a dict {'data': (N, 46), 'label': (N,) in 1..24}: a pickled 0-d object array."""
    for name, n in (("satellite_train.npy", n_train), ("satellite_test.npy", n_test)):
        label = np.arange(n) % 24 + 1
        data = RNG.normal(size=(n, 46)) + label[:, None] * 0.1
        np.save(root / name, {"data": data, "label": label})


def write_deepsea(root: Path, length: int = 200) -> None:
    """npz of one-hot x (N, L, 4) uint8 and 0/1 y (N, 36) uint8 for train / val / test."""
    arrays = {}
    for split, n in (("train", 60), ("val", 16), ("test", 24)):
        bases = RNG.integers(0, 4, size=(n, length))
        arrays[f"x_{split}"] = np.eye(4, dtype=np.uint8)[bases]
        arrays[f"y_{split}"] = (RNG.random((n, 36)) < 0.3).astype(np.uint8)
        arrays[f"y_{split}"][0], arrays[f"y_{split}"][1] = 0, 1  # every label has both classes
    np.savez(root / "deepsea_filtered.npz", **arrays)


ECG_CODES = np.array(["N", "A", "O", "~"])


def write_ecg(root: Path, n: int = 40) -> tuple[list[np.ndarray], np.ndarray]:
    """Pickle of {'data': object array of records (L_i,), 'label': array of 'N'/'A'/'O'/'~'}, lengths vary."""
    records = [RNG.integers(-400, 400, size=int(RNG.integers(1100, 2600))).astype(np.int16) for _ in range(n)]
    labels = ECG_CODES[np.arange(n) % 4]
    data = np.empty(n, dtype=object)
    data[:] = records
    with open(root / "challenge2017.pkl", "wb") as fh:
        pickle.dump({"data": data, "label": labels}, fh)
    return records, labels


def write_spherical(root: Path) -> None:
    """gzip pickle {'train': {'images': (N, 3, 60, 60) uint8, 'labels': (N,)}, 'test': {...}}."""
    obj = {split: {"images": RNG.integers(0, 256, size=(n, 3, 60, 60), dtype=np.uint8),
                   "labels": np.arange(n) % 100}
           for split, n in (("train", 60), ("test", 24))}
    with gzip.open(root / "s2_cifar100.gz", "wb") as fh:
        pickle.dump(obj, fh)


def write_ninapro(root: Path) -> dict[str, np.ndarray]:
    """ninaPro/ninapro_{split}.npy (N, 52, 16) float and label_{split}.npy (N,) in 0..17."""
    folder = root / "ninaPro"
    folder.mkdir()
    out = {}
    for split, n in (("train", 54), ("val", 18), ("test", 18)):
        out[split] = RNG.normal(size=(n, 52, 16)).astype(np.float32)
        np.save(folder / f"ninapro_{split}.npy", out[split])
        np.save(folder / f"label_{split}.npy", (np.arange(n) % 18).astype(np.int8))
    return out


def write_darcy(root: Path, size: int = 41, n_train: int = 40, n_test: int = 12) -> dict[str, np.ndarray]:
    """MATLAB v5 files with 'coeff' (N, S, S) piecewise-constant fields and 'sol' (N, S, S) maps."""
    out = {}
    for name, n in (("smooth1", n_train), ("smooth2", n_test)):
        coeff = np.where(RNG.random((n, size, size)) < 0.5, 3.0, 12.0)
        sol = RNG.random((n, size, size)) * 0.01 + coeff * 1e-3
        scipy.io.savemat(root / f"piececonst_r421_N1024_{name}.mat", {"coeff": coeff, "sol": sol})
        out[name] = sol
    return out


WRITERS = {"satellite": write_satellite, "deepsea": write_deepsea, "ecg": write_ecg, "spherical": write_spherical,
           "ninapro": write_ninapro, "darcy-flow": write_darcy}


def _ctx(root: Path, pickle_ok: bool = True) -> LoadContext:
    return LoadContext(str(root), pickle_ok)


# -- loaders -------------------------------------------------------------------------------------------------


def test_satellite_labels_shifted_and_normalised(tmp_path: Path) -> None:
    write_satellite(tmp_path)
    raw = load_satellite("satellite", _ctx(tmp_path))
    assert raw.x_train.shape == (96, 1, 46) and raw.y_train.min() == 0 and raw.y_train.max() == 23
    d = load_task("satellite", DataConfig(data_dir=str(tmp_path), allow_pickle=True), seed=0)
    assert d.input_shape == (1, 46) and d.num_classes == 24 and d.output == "classes"
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (77, 19, 48)
    assert torch.equal(d.otdd_labels, d.y_train)


@pytest.mark.parametrize("task", ["satellite", "ecg", "spherical"])
def test_pickle_files_need_the_opt_in(tmp_path: Path, task: str, capsys: pytest.CaptureFixture[str]) -> None:
    WRITERS[task](tmp_path)
    with pytest.raises(DataError, match="--allow-pickle"):
        load_task(task, DataConfig(data_dir=str(tmp_path)), seed=0)
    if task == "ecg":  # the CLI reports it as a user error: one line, exit code 2
        assert main(["trial", "--task", "ecg", "--data-dir", str(tmp_path)]) == 2
        assert "opt in with --allow-pickle" in capsys.readouterr().err


def test_cli_trial_with_allow_pickle(tmp_path: Path, tiny_body: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    write_satellite(tmp_path)
    args = ["trial", "--task", "satellite", "--data-dir", str(tmp_path), "--allow-pickle", "--json",
            "--set", f"body.path={tiny_body}", "--set", "embedder.epochs=1", "--set", "embedder.samples=50",
            "--set", "embedder.proxy_samples=100", "--set", "embedder.proxy_classes=4", "--set", "finetune.epochs=1"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["data"]["allow_pickle"] is True and result["details"]["num_classes"] == 24


def test_deepsea_transposed_multilabel_with_official_val(tmp_path: Path) -> None:
    write_deepsea(tmp_path)
    d = load_task("deepsea", DataConfig(data_dir=str(tmp_path)), seed=0)
    assert d.input_shape == (4, 200) and d.target_shape == (36,) and d.num_classes == 36
    assert d.output == "multilabel" and d.metric == "auroc" and d.y_train.dtype == torch.float32
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (60, 16, 24)
    # OTDD labels: 10-means clusters of the label vectors, seeded
    assert d.otdd_labels.shape == (60,) and d.otdd_labels.dtype == torch.int64
    assert len(d.otdd_labels.unique()) == 10
    again = load_task("deepsea", DataConfig(data_dir=str(tmp_path)), seed=0)
    assert torch.equal(again.otdd_labels, d.otdd_labels)
    # one-hot positions survive the transpose: each position has exactly one base
    with np.load(tmp_path / "deepsea_filtered.npz") as f:
        x = f["x_test"]
    np.testing.assert_array_equal(d.x_test.argmax(dim=1).numpy(), x.argmax(axis=2))


@pytest.mark.parametrize(("output", "y", "message"), [
    ("multilabel", np.full((8, 3), 2), "multi-label targets must be 0 or 1"),
    ("multilabel", np.zeros(8), r"expected \(N, K\) 0/1 labels"),
    ("dense", np.zeros((8, 2, 2, 2)), r"expected \(N, L\) or \(N, H, W\) maps"),
    ("classes", np.zeros((8, 2)), r"labels have shape \(8, 2\); expected \(8,\)"),
])
def test_targets_are_checked_by_output_kind(output: str, y: np.ndarray, message: str) -> None:
    from harness.tasks import RawSplits, TaskSpec
    from harness.tasks._base import prepare

    spec = TaskSpec("toy", "1d", lambda name, ctx: raw, output=output)
    raw = RawSplits(np.zeros((8, 1, 5)), y, np.zeros((8, 1, 5)), y)
    with pytest.raises(DataError, match=message):
        prepare(spec, "toy", raw, seed=0, val_fraction=0.25, max_train_samples=None, max_test_samples=None)


def test_deepsea_wrong_layout_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "deepsea_filtered.npz", x_train=np.zeros((4, 4, 10)), y_train=np.zeros((4, 36)))
    with pytest.raises(DataError, match=r"lacks \['x_val', 'y_val', 'x_test', 'y_test'\]"):
        load_task("deepsea", DataConfig(data_dir=str(tmp_path)), seed=0)


def test_slide_windows_strides() -> None:
    rec = np.arange(2000.0)
    x, y = slide_windows([rec], np.array([0]), 1000, lambda c: 500)
    assert x.shape == (3, 1000) and list(x[:, 0]) == [0, 500, 1000] and list(y) == [0, 0, 0]
    x, _ = slide_windows([rec, np.arange(999.0)], np.array([3, 0]), 1000, lambda c: {0: 500, 3: 25}[c])
    assert len(x) == 41  # starts 0, 25, ..., 1000; the short record gives none


def test_ecg_records_split_then_windowed(tmp_path: Path) -> None:
    from sklearn.model_selection import train_test_split

    records, labels = write_ecg(tmp_path)
    raw = load_ecg("ecg", _ctx(tmp_path))
    _, rest = train_test_split(np.arange(40), test_size=0.2, random_state=0)
    val, test = train_test_split(rest, test_size=0.5, random_state=0)
    expect_test = sum(len(range(0, len(records[i]) - 1000 + 1, 500)) for i in test)
    expect_val = sum(len(range(0, len(records[i]) - 1000 + 1, 500)) for i in val)
    assert raw.x_test.shape == (expect_test, 1, 1000) and len(raw.x_val) == expect_val
    first = records[test[0]].astype(np.float64)
    np.testing.assert_allclose(raw.x_test[0, 0], ((first - first.mean()) / first.std())[:1000], rtol=1e-5)
    assert raw.y_test[0] == {"N": 0, "A": 1, "O": 2, "~": 3}[labels[test[0]]]
    # rarer classes are cut more densely in training only: '~' (stride 25) outnumbers 'N' (stride 500)
    counts = np.bincount(raw.y_train, minlength=4)
    assert counts[3] > 5 * counts[0] and set(np.unique(raw.y_train)) <= {0, 1, 2, 3}
    d = load_task("ecg", DataConfig(data_dir=str(tmp_path), allow_pickle=True), seed=0)
    assert d.metric == "macro_f1" and d.input_shape == (1, 1000) and len(d.x_val) == expect_val


def test_ecg_unknown_label(tmp_path: Path) -> None:
    with open(tmp_path / "challenge2017.pkl", "wb") as fh:
        pickle.dump({"data": [np.zeros(1200)] * 10, "label": ["N"] * 9 + ["X"]}, fh)
    with pytest.raises(DataError, match="has label 'X'; expected one of"):
        load_ecg("ecg", _ctx(tmp_path))


def test_spherical_images(tmp_path: Path) -> None:
    write_spherical(tmp_path)
    d = load_task("spherical", DataConfig(data_dir=str(tmp_path), allow_pickle=True), seed=0)
    assert d.input_shape == (3, 60, 60) and d.num_classes == 60 and len(d.x_test) == 24


def test_ninapro_transposed_with_official_val(tmp_path: Path) -> None:
    arrays = write_ninapro(tmp_path)
    raw = load_ninapro("ninapro", _ctx(tmp_path, pickle_ok=False))
    assert raw.x_train.shape == (54, 1, 16, 52) and raw.x_val is not None and len(raw.x_val) == 18
    np.testing.assert_array_equal(raw.x_test[5, 0, 3, 40], arrays["test"][5, 40, 3])
    d = load_task("ninapro", DataConfig(data_dir=str(tmp_path)), seed=0)
    assert d.input_shape == (1, 16, 52) and d.num_classes == 18 and len(d.x_val) == 18


def test_ninapro_object_array_needs_opt_in(tmp_path: Path) -> None:
    write_ninapro(tmp_path)
    objects = np.empty(54, dtype=object)
    objects[:] = list(np.arange(54) % 18)
    np.save(tmp_path / "ninaPro" / "label_train.npy", objects, allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects.*--allow-pickle"):
        load_ninapro("ninapro", _ctx(tmp_path, pickle_ok=False))
    assert load_ninapro("ninapro", _ctx(tmp_path)).y_train.dtype == np.int64


def test_darcy_subsampled_dense_targets(tmp_path: Path) -> None:
    sols = write_darcy(tmp_path)
    raw = load_darcy_flow("darcy-flow", _ctx(tmp_path, pickle_ok=False))
    assert raw.x_train.shape == (36, 3, 9, 9) and raw.y_train.shape == (36, 9, 9)
    assert raw.y_val is not None and raw.y_val.shape == (4, 9, 9) and raw.y_test.shape == (12, 9, 9)
    np.testing.assert_allclose(raw.y_val, sols["smooth1"][36:40, ::5, ::5], rtol=1e-6)
    np.testing.assert_allclose(raw.x_train[0, 1, 0], np.linspace(0, 1, 9), rtol=1e-6)  # x grid varies along W
    np.testing.assert_allclose(raw.x_train[0, 2, :, 0], np.linspace(0, 1, 9), rtol=1e-6)  # y grid along H
    d = load_task("darcy-flow", DataConfig(data_dir=str(tmp_path)), seed=0)
    assert d.output == "dense" and d.target_shape == (9, 9) and d.metric == "rel_l2"
    np.testing.assert_allclose(d.y_train.mean(0).numpy(), 0.0, atol=1e-5)  # standardised per grid point
    np.testing.assert_allclose(d.decode(d.y_val).numpy(), raw.y_val, rtol=1e-5, atol=1e-7)
    assert d.otdd_labels.shape == (36,) and len(d.otdd_labels.unique()) == 10


def test_darcy_matlab_v73_is_named(tmp_path: Path) -> None:
    write_darcy(tmp_path)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    (tmp_path / "piececonst_r421_N1024_smooth1.mat").write_bytes(
        header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM" + b"\x00" * 512)
    with pytest.raises(DataError, match="MATLAB v7.3 \\(HDF5\\).*h5py is not installed"):
        load_darcy_flow("darcy-flow", _ctx(tmp_path))


def test_missing_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCA_ABLATE_DATA", raising=False)
    with pytest.raises(DataError, match="needs deepsea_filtered.npz in a data directory"):
        load_task("deepsea", DataConfig(), seed=0)
    with pytest.raises(DataError, match="satellite_train.npy not found"):
        load_task("satellite", DataConfig(data_dir=str(tmp_path), allow_pickle=True), seed=0)


def test_tasks_list_files_and_availability(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_ninapro(tmp_path)
    infos = {i.name: i for i in list_tasks(str(tmp_path))}
    assert infos["ninapro"].available and not infos["darcy-flow"].available
    assert "piececonst_r421_N1024_smooth1.mat" in infos["darcy-flow"].requires
    assert "--allow-pickle" in infos["ecg"].requires and "challenge2017.pkl" in infos["ecg"].requires
    assert main(["tasks", "--data-dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["ninapro"].endswith("[available]") and "satellite_train.npy" in lines["satellite"]


# -- a trial on every task -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "metric", "direction"), [
    ("satellite", "accuracy", "maximize"), ("deepsea", "auroc", "maximize"), ("ecg", "macro_f1", "maximize"),
    ("spherical", "accuracy", "maximize"), ("ninapro", "accuracy", "maximize"), ("darcy-flow", "rel_l2", "minimize"),
])
def test_trial_runs_on_each_task(tmp_path: Path, tiny_body: str, task: str, metric: str, direction: str) -> None:
    WRITERS[task](tmp_path)
    cfg = TrialConfig().override({
        "task": task, "data.data_dir": str(tmp_path), "data.allow_pickle": True, "data.max_train_samples": 120,
        "data.max_test_samples": 40, "body.path": tiny_body, "embedder.epochs": 1, "embedder.samples": 60,
        "embedder.proxy_samples": 100, "embedder.proxy_classes": 4, "finetune.epochs": 1,
    })
    r = run_trial(cfg)
    assert (r.metric, r.direction) == (metric, direction)
    assert np.isfinite(r.test_score) and np.isfinite(r.val_score) and len(r.otdd_curve) == 2
    assert r.details["test_metrics"][metric] == r.test_score
    if direction == "minimize":
        assert r.test_score > 0 and r.details["target_shape"] == [9, 9]
    else:
        assert 0.0 <= r.test_score <= 1.0
    if task == "deepsea":
        assert set(r.details["test_metrics"]) == {"auroc", "map"}
