"""harness.otdd.orca_distance (ORCA's class-wise alignment loss) against an independent POT computation."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch

from harness.otdd import OrcaSource, dataset_distance, orca_distance


def _toy(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return xs (30, 4), ys (30,) in 0..2, xt (23, 4), yt (23,) with classes of 9, 8 and 6 rows."""
    gen = torch.Generator().manual_seed(seed)
    ys = torch.arange(30) % 3
    yt = torch.tensor([0] * 9 + [1] * 8 + [2] * 6)[torch.randperm(23, generator=gen)]
    mu = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    xs = mu[ys] + 0.5 * torch.randn(30, 4, generator=gen, dtype=torch.float64)
    xt = mu[yt] + 0.5 * torch.randn(23, 4, generator=gen, dtype=torch.float64) + 0.3
    return xs, ys, xt, yt


def _pot_reference(xs: np.ndarray, ys: np.ndarray, xt: np.ndarray, yt: np.ndarray, cap: int | None) -> float:
    """Σ_c w_c · emd2 with cost ½‖x − x'‖² + ½·W(y, c), W = emd2 of the classes under ‖·‖², all by POT."""
    total = 0.0
    for c in np.unique(yt):
        xc = xt[yt == c][:cap]
        w = {a: ot.emd2(ot.unif(int((ys == a).sum())), ot.unif(len(xc)), ot.dist(xs[ys == a], xc))
             for a in np.unique(ys)}
        cost = 0.5 * ot.dist(xs, xc) + 0.5 * np.array([w[a] for a in ys])[:, None]
        total += float((yt == c).mean()) * float(ot.emd2(ot.unif(len(xs)), ot.unif(len(xc)), cost))
    return total


@pytest.mark.parametrize("cap", [None, 5])
def test_exact_outer_equals_pot(cap: int | None) -> None:
    xs, ys, xt, yt = _toy()
    value = orca_distance(xs, ys, xt, yt, inner="exact", outer="emd", max_per_class=cap)
    ref = _pot_reference(xs.numpy(), ys.numpy(), xt.numpy(), yt.numpy(), cap)
    assert value.dtype == torch.float64 and value.ndim == 0
    np.testing.assert_allclose(float(value), ref, rtol=1e-6, atol=1e-6)


def test_no_cap_is_the_class_conditional_distance() -> None:
    xs, ys, xt, yt = _toy(1)
    for outer, debiased in (("emd", False), ("sinkhorn", True)):
        torch.testing.assert_close(
            orca_distance(xs, ys, xt, yt, outer=outer, tol=1e-10),
            dataset_distance(xs, ys, xt, yt, outer=outer, debiased=debiased, class_conditional=True, tol=1e-10))


def test_a_class_left_with_one_sample_is_skipped() -> None:
    xs, ys, xt, yt = _toy(2)
    one = torch.cat([yt, torch.tensor([7])])
    x_one = torch.cat([xt, xt[:1]])
    kept = orca_distance(xs, ys, x_one, one, outer="emd")
    scaled = orca_distance(xs, ys, xt, yt, outer="emd") * (23 / 24)  # same classes, weights over 24 rows
    torch.testing.assert_close(kept, scaled)


@pytest.mark.parametrize("outer", ["emd", "sinkhorn"])
def test_gradients_match_finite_differences(outer: str) -> None:
    xs, ys, xt, yt = _toy(3)
    xt = xt[:8].clone().requires_grad_(True)
    yt = yt[:8]

    def f(x: torch.Tensor) -> torch.Tensor:
        return orca_distance(xs, ys, x, yt, outer=outer, max_per_class=2, tol=1e-12, max_iter=20000)

    assert torch.autograd.gradcheck(f, (xt,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_cached_source_equals_the_function_and_caches_the_self_term() -> None:
    xs, ys, xt, yt = _toy(4)
    source = OrcaSource(xs, ys, outer="sinkhorn", max_per_class=4, tol=1e-10)
    for shift in (0.0, 0.4):
        value, log = source.distance(xt + shift, yt, log=True)
        torch.testing.assert_close(value, orca_distance(xs, ys, xt + shift, yt, max_per_class=4, tol=1e-10))
        assert log["max_per_class"] == 4 and len(log["class_values"]) == 3


def test_unknown_outer_names_the_choices() -> None:
    xs, ys, xt, yt = _toy()
    with pytest.raises(ValueError, match=r"expected one of \['emd', 'sinkhorn'\]"):
        orca_distance(xs, ys, xt, yt, outer="greenkhorn")


def test_orca_class_take_is_whole_batches_past_the_cap() -> None:
    from harness.align import orca_class_take

    assert [orca_class_take(128, b) for b in (16, 32, 4)] == [144, 160, 132]
    assert orca_class_take(None, 16) is None


@pytest.mark.parametrize("objective", ["orca-otdd-exact", "orca-otdd-gaussian"])
def test_orca_objectives_train_and_record_the_joint_otdd(tiny_body: str, objective: str) -> None:
    from harness import TrialConfig, run_trial

    cfg = TrialConfig().override({"task": "synthetic-2d", "body.path": tiny_body, "embedder.objective": objective,
                                  "embedder.max_per_class": 10, "embedder.epochs": 3, "embedder.samples": 120,
                                  "embedder.proxy_samples": 100, "embedder.proxy_classes": 4, "finetune.epochs": 1,
                                  "finetune.batch_size": 8})
    r = run_trial(cfg)
    assert len(r.otdd_curve) == 4 and all(v > 0 for v in r.otdd_curve)
    assert r.config["embedder"]["max_per_class"] == 10
