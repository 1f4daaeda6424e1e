"""Tests for harness.otdd: reference values, gradients, caching, validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import ot
import pytest
import torch

from harness.otdd import (
    INNER_METHODS,
    OUTER_METHODS,
    OTDDSource,
    dataset_distance,
    label_distances,
)
import harness.otdd as otdd_module


REFERENCE_DIR = Path(__file__).resolve().parent.parent / "data" / "otdd"
"""Copied from the reference implementation's outputs; tests/data/otdd/README.md says how they were made."""
CASE_NAMES = ["balanced_small", "balanced_d64", "unbalanced_k5_k3", "minilm_width"]


def _case(name: str) -> dict[str, Any]:
    with np.load(REFERENCE_DIR / f"{name}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _toy(
    ns: int, nt: int, d: int, ks: int, kt: int, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return a small labelled pair: xs (ns, d), ys (ns,), xt (nt, d), yt (nt,)."""
    gen = torch.Generator().manual_seed(seed)
    ys = torch.arange(ns) % ks
    yt = torch.arange(nt) % kt
    mu = torch.randn(max(ks, kt), d, generator=gen, dtype=torch.float64)
    xs = mu[ys] + 0.5 * torch.randn(ns, d, generator=gen, dtype=torch.float64)
    xt = mu[yt] + 0.5 * torch.randn(nt, d, generator=gen, dtype=torch.float64) + 0.3
    return xs.to(dtype), ys, xt.to(dtype), yt


# --------------------------------------------------------------------------- reference cases


def test_reference_cases_listed() -> None:
    names = [case["name"] for case in json.loads((REFERENCE_DIR / "cases.json").read_text())]
    assert sorted(names) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("inner, rtol", [("exact", 1e-6), ("gaussian", 1e-4)])
def test_label_distances_match_reference(name: str, inner: str, rtol: float) -> None:
    case = _case(name)
    w = label_distances(case["xs"], case["ys"], case["xt"], case["yt"], inner=inner)
    assert w.shape == case[f"W_{inner}"].shape
    np.testing.assert_allclose(w.numpy(), case[f"W_{inner}"], rtol=rtol)


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_emd_matches_reference(name: str, inner: str) -> None:
    case = _case(name)
    value = dataset_distance(case["xs"], case["ys"], case["xt"], case["yt"], inner=inner, outer="emd")
    assert value.dtype == torch.float64 and value.ndim == 0
    np.testing.assert_allclose(float(value), float(case[f"emd_{inner}"]), rtol=1e-6)


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_converged_sinkhorn_transport_cost_is_near_emd(name: str, inner: str) -> None:
    case = _case(name)
    value, log = dataset_distance(
        case["xs"], case["ys"], case["xt"], case["yt"], inner=inner, outer="sinkhorn", reg=0.1, log=True
    )
    assert log["converged"]
    np.testing.assert_allclose(float(value), float(case[f"emd_{inner}"]), rtol=1e-3)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_debiased_sinkhorn_against_orca_reported_value(name: str) -> None:
    # otdd's numbers are "what ORCA's code reports", not ground truth: its
    # unconverged geomloss solve falls below the exact value by 0.5-3% on
    # balanced classes and by ~20% when class proportions differ.
    case = _case(name)
    value = dataset_distance(
        case["xs"], case["ys"], case["xt"], case["yt"], inner="exact", outer="sinkhorn", debiased=True
    )
    orca = float(case["otdd_exact_debiased"])
    if name == "unbalanced_k5_k3":
        assert orca < float(value) <= float(case["emd_exact"]) * 1.001
    else:
        np.testing.assert_allclose(float(value), orca, rtol=0.035)


# --------------------------------------------------------------------------- gradients

GRAD_SETTINGS = [
    pytest.param({"outer": "emd"}, id="emd"),
    pytest.param({"outer": "sinkhorn", "reg": 0.5, "tol": 1e-12}, id="sinkhorn-cost"),
    pytest.param({"outer": "sinkhorn", "reg": 0.5, "debiased": True, "tol": 1e-12}, id="sinkhorn-debiased"),
    pytest.param({"outer": "emd", "class_conditional": True}, id="class-conditional"),
]


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
@pytest.mark.parametrize("settings", GRAD_SETTINGS)
@pytest.mark.parametrize("sizes", [(12, 9, 3), (8, 10, 6)], ids=["full-rank", "rank-deficient"])
def test_gradcheck_dataset_distance(inner: str, settings: dict[str, Any], sizes: tuple[int, int, int]) -> None:
    # (8, 10, 6): classes of 2-4 samples in 6 dimensions, so the Gaussian
    # covariances are rank-deficient.
    xs, ys, xt, yt = _toy(*sizes, ks=3, kt=2)
    xs.requires_grad_()
    xt.requires_grad_()

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return dataset_distance(a, ys, b, yt, inner=inner, **settings)

    # Sinkhorn solves are slow to repeat per input entry: check random directions instead.
    fast = settings["outer"] == "sinkhorn"
    assert torch.autograd.gradcheck(fn, (xs, xt), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=fast)


@pytest.mark.parametrize("inner", ["exact", "gaussian"])
def test_gradcheck_label_distances(inner: str) -> None:
    xs, ys, xt, yt = _toy(9, 8, 5, ks=3, kt=2, seed=3)
    xs.requires_grad_()
    xt.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: label_distances(a, ys, b, yt, inner=inner), (xs, xt), eps=1e-6, atol=1e-5, rtol=1e-4
    )


@pytest.mark.parametrize("inner, outer, debiased", [("gaussian", "sinkhorn", True), ("exact", "emd", False)])
def test_gradcheck_cached_source(inner: str, outer: str, debiased: bool) -> None:
    xs, ys, xt, yt = _toy(10, 8, 4, ks=2, kt=2, seed=5)
    source = OTDDSource(xs, ys, inner=inner, outer=outer, reg=0.5, debiased=debiased, tol=1e-12)
    xt.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda b: source.distance(b, yt), (xt,), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=outer == "sinkhorn"
    )


def test_rank_deficient_reference_gradient_is_finite() -> None:
    case = _case("minilm_width")  # d = 384, 50-60 samples per class
    xt = torch.tensor(case["xt"], requires_grad=True)
    value = dataset_distance(case["xs"], case["ys"], xt, case["yt"], inner="gaussian", outer="emd")
    value.backward()
    assert xt.grad is not None and xt.grad.dtype == torch.float32
    assert bool(torch.isfinite(xt.grad).all()) and float(xt.grad.abs().sum()) > 0


def test_gradient_arrives_in_input_dtype() -> None:
    xs, ys, xt, yt = _toy(12, 10, 4, ks=2, kt=2, dtype=torch.float32)
    xt.requires_grad_()
    value = dataset_distance(xs, ys, xt, yt, inner="gaussian")
    value.backward()
    assert value.dtype == torch.float64
    assert xt.grad is not None and xt.grad.dtype == torch.float32


# --------------------------------------------------------------------------- semantics


def test_emd_agrees_with_pot_on_unequal_sizes() -> None:
    xs, ys, xt, yt = _toy(30, 21, 4, ks=3, kt=3, seed=7)
    value, log = dataset_distance(xs, ys, xt, yt, inner="exact", log=True)
    w = log["label_distances"].numpy()
    cost = 0.5 * ot.dist(xs.numpy(), xt.numpy()) + 0.5 * w[ys.numpy()][:, yt.numpy()]
    # ot.emd2 on the same cost with uniform weights.
    np.testing.assert_allclose(float(value), ot.emd2([], [], cost, numItermax=10**7), rtol=1e-10)
    assert log["solver"] == "network_simplex"
    np.testing.assert_allclose(float(log["class_mass"].sum()), 1.0, rtol=1e-12)


def test_labels_are_remapped_in_sorted_order() -> None:
    xs, ys, xt, yt = _toy(12, 9, 3, ks=3, kt=3, seed=2)
    relabel = np.array([100, -3, 7])
    w = label_distances(xs, ys, xt, yt)
    w2 = label_distances(xs, relabel[ys.numpy()], xt, relabel[yt.numpy()])
    order = np.argsort(relabel)  # sorted labels -3, 7, 100 are codes 1, 2, 0
    torch.testing.assert_close(w2, w[order][:, order])
    v, log = dataset_distance(xs, relabel[ys.numpy()], xt, yt, log=True)
    np.testing.assert_array_equal(log["source_classes"], np.array([-3, 7, 100]))
    torch.testing.assert_close(v, dataset_distance(xs, ys, xt, yt))


def test_numpy_and_torch_inputs_agree() -> None:
    xs, ys, xt, yt = _toy(15, 12, 4, ks=3, kt=2, dtype=torch.float32)
    a = dataset_distance(xs, ys, xt, yt, inner="gaussian")
    b = dataset_distance(xs.numpy(), ys.numpy(), xt.numpy(), yt.numpy(), inner="gaussian")
    torch.testing.assert_close(a, b)


def test_class_conditional_is_frequency_weighted_sum() -> None:
    xs, ys, xt, yt = _toy(16, 15, 3, ks=2, kt=3, seed=4)
    yt = torch.tensor([0] * 3 + [1] * 5 + [2] * 7)
    total = dataset_distance(xs, ys, xt, yt, class_conditional=True)
    parts = [
        (float((yt == b).sum()) / 15) * dataset_distance(xs, ys, xt[yt == b], torch.zeros(int((yt == b).sum()), dtype=torch.long))
        for b in range(3)
    ]
    torch.testing.assert_close(total, sum(parts))


def test_debiased_divergence_of_identical_data_is_zero() -> None:
    xs, ys, _, _ = _toy(14, 1, 3, ks=2, kt=1, seed=8)
    value = dataset_distance(xs, ys, xs, ys, inner="gaussian", outer="sinkhorn", reg=0.1, debiased=True)
    torch.testing.assert_close(value, torch.zeros((), dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "settings",
    [
        {"inner": "exact", "outer": "emd"},
        {"inner": "gaussian", "outer": "sinkhorn", "debiased": True},
        {"inner": "exact", "outer": "sinkhorn", "class_conditional": True},
    ],
)
def test_cached_source_matches_dataset_distance(settings: dict[str, Any]) -> None:
    xs, ys, xt, yt = _toy(40, 25, 5, ks=4, kt=3, seed=9)
    # A tight tolerance: the cached source starts Sinkhorn from the previous call's
    # potentials, so the two paths agree to what the solver converged to, not bit for bit.
    source = OTDDSource(xs, ys, reg=0.1, tol=1e-10, **settings)
    for shift in (0.0, 0.5):
        torch.testing.assert_close(
            source.distance(xt + shift, yt), dataset_distance(xs, ys, xt + shift, yt, reg=0.1, tol=1e-10, **settings)
        )


def test_warm_start_survives_a_large_move_of_the_target() -> None:
    xs, ys, xt, yt = _toy(60, 40, 5, ks=3, kt=3, seed=4)
    source = OTDDSource(xs, ys, inner="gaussian", outer="sinkhorn", reg=0.01, debiased=True)
    source.distance(xt, yt)
    far = xt * 3.0 + 40.0  # old potentials exceed the new cost by far more than log(float max) * eps
    value, log = source.distance(far, yt, log=True)
    assert log["converged"] and log["start"] in ("warm", "exact")
    expected = dataset_distance(xs, ys, far, yt, inner="gaussian", outer="sinkhorn", reg=0.01, debiased=True)
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-6)


def test_cached_source_starts_sinkhorn_from_the_previous_call() -> None:
    xs, ys, xt, yt = _toy(60, 40, 5, ks=3, kt=3, seed=4)
    source = OTDDSource(xs, ys, inner="gaussian", outer="sinkhorn", reg=0.01, debiased=True)
    _, first = source.distance(xt, yt, log=True)
    _, second = source.distance(xt + 0.05, yt, log=True)
    assert first["start"] == "exact" and second["start"] == "warm"
    assert first["converged"] and second["converged"]
    _, other = source.distance(xt[:30], yt[:30], log=True)  # another layout: no warm start
    assert other["start"] == "exact" and other["converged"]
    _, cold = dataset_distance(xs, ys, xt + 0.05, yt, inner="gaussian", outer="sinkhorn", reg=0.01,
                               debiased=True, log=True)
    assert cold["start"] == "exact"
    np.testing.assert_allclose(second["value"], cold["value"], rtol=1e-6)


def test_log_holds_diagnostics() -> None:
    xs, ys, xt, yt = _toy(20, 18, 3, ks=4, kt=3)
    value, log = dataset_distance(xs, ys, xt, yt, outer="sinkhorn", debiased=True, log=True)
    assert log["label_distances"].shape == (4, 3) and log["class_mass"].shape == (4, 3)
    np.testing.assert_allclose(float(log["class_mass"].sum()), 1.0, rtol=1e-4)
    np.testing.assert_allclose(
        log["value"], log["cross_term"] - 0.5 * log["source_self_term"] - 0.5 * log["target_self_term"]
    )
    assert log["value"] == float(value) and log["converged"] and log["n_iter"] >= 0


def test_max_samples_is_seeded() -> None:
    xs, ys, xt, yt = _toy(60, 50, 3, ks=3, kt=3)
    a, log = dataset_distance(xs, ys, xt, yt, max_samples=20, random_state=1, log=True)
    b = dataset_distance(xs, ys, xt, yt, max_samples=20, random_state=1)
    c = dataset_distance(xs, ys, xt, yt, max_samples=20, random_state=2)
    torch.testing.assert_close(a, b)
    assert float(a) != float(c)
    assert log["n_source"] == 20 and log["n_target"] == 20


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("inner, outer", [("exact", "emd"), ("gaussian", "sinkhorn")])
def test_cuda_matches_cpu(inner: str, outer: str) -> None:
    xs, ys, xt, yt = _toy(30, 20, 4, ks=3, kt=2)
    cpu = dataset_distance(xs, ys, xt, yt, inner=inner, outer=outer)
    xt_cuda = xt.cuda().requires_grad_()
    gpu = dataset_distance(xs.cuda(), ys.cuda(), xt_cuda, yt.cuda(), inner=inner, outer=outer)
    gpu.backward()
    assert gpu.device.type == "cuda" and xt_cuda.grad is not None and xt_cuda.grad.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


# --------------------------------------------------------------------------- validation


def test_registries_list_choices() -> None:
    assert sorted(INNER_METHODS) == ["exact", "gaussian"]
    assert sorted(OUTER_METHODS) == ["emd", "sinkhorn"]
    xs, ys, xt, yt = _toy(6, 6, 2, ks=2, kt=2)
    with pytest.raises(ValueError, match=r"unknown inner method 'wasserstein'; expected one of \['exact', 'gaussian'\]"):
        dataset_distance(xs, ys, xt, yt, inner="wasserstein")
    with pytest.raises(ValueError, match=r"unknown outer method 'ot'; expected one of \['emd', 'sinkhorn'\]"):
        dataset_distance(xs, ys, xt, yt, outer="ot")
    with pytest.raises(ValueError, match="unknown inner"):
        OTDDSource(xs, ys, inner="nope")


def test_public_names_resolve() -> None:
    for name in otdd_module.__all__:
        assert getattr(otdd_module, name) is not None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda xs, ys, xt, yt: (xs[:-1], ys, xt, yt), "ys has 8 labels but the features have 7 rows"),
        (lambda xs, ys, xt, yt: (xs, ys, xt[:, :2], yt), "xt has width 2 but the source has width 3"),
        (lambda xs, ys, xt, yt: (xs[0], ys, xt, yt), r"xs must be 2-D"),
        (lambda xs, ys, xt, yt: (xs[:0], ys[:0], xt, yt), "xs is empty"),
        (lambda xs, ys, xt, yt: (xs, ys, torch.where(xt > 0, torch.nan, xt), yt), "xt contains NaN or inf"),
        (lambda xs, ys, xt, yt: (xs, ys, xt.masked_fill(xt > 0, float("inf")), yt), "xt contains NaN or inf"),
        (lambda xs, ys, xt, yt: (xs, ys.double(), xt, yt), "ys must hold integer labels"),
        (lambda xs, ys, xt, yt: (xs.long(), ys, xt, yt), "xs must hold floating-point features"),
    ],
)
def test_bad_inputs_raise(mutate: Any, message: str) -> None:
    xs, ys, xt, yt = _toy(8, 6, 3, ks=2, kt=2)
    with pytest.raises(ValueError, match=message):
        dataset_distance(*mutate(xs, ys, xt, yt))


def test_gaussian_rejects_singleton_class() -> None:
    xs, ys, xt, yt = _toy(8, 6, 3, ks=2, kt=2)
    yt = torch.tensor([0, 0, 0, 1, 1, 5])
    with pytest.raises(ValueError, match="yt: class 5 has 1 sample"):
        dataset_distance(xs, ys, xt, yt, inner="gaussian")
    dataset_distance(xs, ys, xt, yt, inner="exact")  # a singleton class is fine for exact OT


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"outer": "sinkhorn", "reg": 0.0}, "reg must be a positive finite number"),
        ({"outer": "emd", "debiased": True}, "debiased=True needs outer='sinkhorn'"),
        ({"max_samples": 0}, "max_samples must be None or a positive int"),
    ],
)
def test_bad_settings_raise(kwargs: dict[str, Any], message: str) -> None:
    xs, ys, xt, yt = _toy(8, 6, 3, ks=2, kt=2)
    with pytest.raises(ValueError, match=message):
        dataset_distance(xs, ys, xt, yt, **kwargs)


def test_mixed_devices_raise() -> None:
    xs, ys, xt, yt = _toy(8, 6, 3, ks=2, kt=2)
    with pytest.raises(ValueError, match="different devices"):
        dataset_distance(xs, ys, xt.to("meta"), yt)


# --------------------------------------------------------------------------- sparse exact outer


def _cost_of(xs: torch.Tensor, ys: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor) -> np.ndarray:
    w = label_distances(xs, ys, xt, yt, inner="exact").numpy()
    return 0.5 * ot.dist(xs.numpy(), xt.numpy()) + 0.5 * w[ys.numpy()][:, yt.numpy()]


def test_large_exact_solves_price_out_to_the_dense_optimum() -> None:
    # 600 x 540 entries: above the size where the outer solve starts from the class-pair plans.
    xs, ys, xt, yt = _toy(600, 540, 6, ks=5, kt=4, seed=12)
    value, log = dataset_distance(xs, ys, xt, yt, inner="exact", outer="emd", log=True)
    assert log["solver"] == "network_simplex_sparse"
    expected = ot.emd2(np.full(600, 1 / 600), np.full(540, 1 / 540), _cost_of(xs, ys, xt, yt), numItermax=10**8)
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)
    np.testing.assert_allclose(float(log["class_mass"].sum()), 1.0, rtol=1e-12)


def test_sparse_solver_reaches_the_optimum_from_a_poor_feasible_start() -> None:
    from harness._otdd.exact import solve_exact, solve_exact_sparse

    rng = np.random.default_rng(3)
    cost = rng.random((300, 200)) * 10
    # A staircase (north-west corner) plan is feasible but far from optimal.
    rows, cols, i, j = [], [], 0, 0
    while i < 300 and j < 200:
        rows.append(i)
        cols.append(j)
        if (i + 1) * 200 < (j + 1) * 300:
            i += 1
        elif (i + 1) * 200 > (j + 1) * 300:
            j += 1
        else:
            i, j = i + 1, j + 1
    plan = solve_exact_sparse(cost, np.array(rows), np.array(cols))
    dense = solve_exact(cost)
    assert plan.solver == "network_simplex_sparse"
    np.testing.assert_allclose(plan.value, dense.value, rtol=1e-12)
    np.testing.assert_allclose(np.bincount(plan.rows, plan.vals, minlength=300), 1 / 300, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(plan.cols, plan.vals, minlength=200), 1 / 200, rtol=1e-9)


def test_sparse_solver_falls_back_to_the_dense_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness._otdd import exact

    monkeypatch.setattr(exact, "_MAX_ROUNDS", 0)
    xs, ys, xt, yt = _toy(600, 540, 6, ks=5, kt=4, seed=12)
    value, log = dataset_distance(xs, ys, xt, yt, inner="exact", outer="emd", log=True)
    assert log["solver"] == "network_simplex"
    expected = ot.emd2(np.full(600, 1 / 600), np.full(540, 1 / 540), _cost_of(xs, ys, xt, yt), numItermax=10**8)
    np.testing.assert_allclose(float(value), expected, rtol=1e-12)


def test_sparse_outer_gradient_is_the_optimal_plan() -> None:
    xs, ys, xt, yt = _toy(520, 500, 3, ks=2, kt=2, seed=5)
    xt = xt.clone().requires_grad_(True)
    value, log = dataset_distance(xs, ys, xt, yt, inner="exact", outer="emd", log=True)
    assert log["solver"] == "network_simplex_sparse"
    (grad,) = torch.autograd.grad(value, xt)
    step = 1e-6 * torch.randn(xt.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    moved = dataset_distance(xs, ys, (xt + step).detach(), yt, inner="exact", outer="emd")
    np.testing.assert_allclose(float(moved - value.detach()), float((grad * step).sum()), rtol=1e-3, atol=1e-12)
