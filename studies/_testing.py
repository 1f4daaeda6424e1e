"""Fake trial functions for tests and benchmarks of the study engine (no torch, no data).

They have ``harness.run_trial``'s signature and return a dict with TrialResult's
fields; each also takes a plain dict of harness paths (what a ``trial_fn:`` spec hands its
function), so ``run --trial-fn studies._testing:fake_trial`` works on a harness spec.
:func:`toy_trial` is a trial function of free names, as a user's would be. Worker processes import them by name (``studies._testing:fake_trial``),
so tests select one with ``run_study(trial_fn=...)``, ``--trial-fn`` or the
``ORCA_ABLATE_TRIAL_FN`` environment variable. Knobs come from the environment,
which spawned workers inherit:

- ``ORCA_ABLATE_FAKE_SECONDS``: seconds each trial sleeps (default 0);
- ``ORCA_ABLATE_FAKE_EPOCHS``: fine-tuning epochs reported through ``on_epoch`` (default 3);
- ``ORCA_ABLATE_FAKE_DIR``: a directory where ``flaky_trial`` and ``counting_trial`` keep marker files.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from harness import contract as c
from harness.config import TrialConfig, flatten

__all__ = ["always_failing_trial", "checkpoint_trial", "counting_trial", "fake_result", "fake_trial", "flaky_trial",
           "nan_trial", "toy_trial"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _takes_settings(fn: _F) -> _F:
    """Let a fake of run_trial's signature take a plain settings dict (harness paths) too."""
    @functools.wraps(fn)
    def wrapper(config: TrialConfig | Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        if isinstance(config, Mapping):
            config = TrialConfig().override(flatten(config))
        return fn(config, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def toy_trial(settings: Mapping[str, Any], on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """A trial function of free names (``run --trial-fn studies._testing:toy_trial``): no harness, no torch.

    Reads ``method`` (``a``; ``b`` scores +0.05; ``same`` +0.0), ``lr`` (any number, no
    effect) and ``noise`` (SD of the seed's draw, default 0.005, from base:); the score is
    0.8 + the effect + a seeded normal draw, so hypotheses about ``method`` have known answers.
    Sleeps ``ORCA_ABLATE_FAKE_SECONDS`` first.
    """
    seconds = float(os.environ.get("ORCA_ABLATE_FAKE_SECONDS", "0"))
    if seconds:
        time.sleep(seconds)
    effect = {"a": 0.0, "b": 0.05, "same": 0.0}[str(settings.get("method", "a"))]
    draw = random.Random(f"{settings[c.PARAM_TASK]}/{settings[c.PARAM_SEED]}/{settings.get('method')}")
    score = 0.8 + effect + draw.gauss(0.0, float(settings.get("noise", 0.005)))
    for epoch in (1, 2):
        if on_epoch is not None:
            on_epoch(epoch, score - 0.01 / epoch)
    result = {c.TEST_SCORE: score, c.VAL_SCORE: score - 0.005, "macro_f1": score - 0.02}
    if not math.isfinite(score):
        raise ValueError("toy_trial: non-finite score")
    return result


@_takes_settings
def fake_result(config: TrialConfig, on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Return a deterministic TrialResult-shaped dict for ``config`` (scores from a hash of it)."""
    digest = hashlib.sha256(config.to_json().encode()).digest()
    score = 0.5 + digest[0] / 512
    epochs = int(os.environ.get("ORCA_ABLATE_FAKE_EPOCHS", "3"))
    curve = [round(score * (i + 1) / epochs, 6) for i in range(epochs)]
    seconds = float(os.environ.get("ORCA_ABLATE_FAKE_SECONDS", "0"))
    start = time.perf_counter()
    for epoch, value in enumerate(curve, start=1):
        if seconds:
            time.sleep(seconds / max(1, epochs))
        if on_epoch is not None:
            on_epoch(epoch, value)
    return {
        c.TEST_SCORE: round(score - 0.01, 6),
        c.VAL_SCORE: max(curve) if curve else score,
        c.METRIC: "accuracy",
        c.DIRECTION: "maximize",
        c.MODALITY: "1d" if config.task.startswith(("ucr:", "synthetic-1d")) else "2d",
        c.OTDD_BEFORE: 10.0 + digest[1] / 25.6,
        c.OTDD_AFTER: 1.0 + digest[2] / 25.6,
        c.OTDD_CURVE: [10.0, 5.0, 1.0][: config.embedder.epochs + 1],
        c.VAL_CURVE: curve,
        c.BEST_EPOCH: epochs,
        c.SECONDS: {"total": time.perf_counter() - start},
        c.TRAINABLE_PARAMS: 1000,
        c.PEAK_MEM_MB: 12.5,
        c.DEVICE: "cpu",
        c.CONFIG: config.to_dict(),
        c.VERSIONS: {"fake": "1"},
        c.DETAILS: {"pid": os.getpid(), "threads": os.environ.get("OMP_NUM_THREADS")},
    }


@_takes_settings
def fake_trial(config: TrialConfig, on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Return :func:`fake_result` after sleeping ``ORCA_ABLATE_FAKE_SECONDS``."""
    return fake_result(config, on_epoch)


@_takes_settings
def flaky_trial(config: TrialConfig, on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Raise on the first call for each config (marker files in ``ORCA_ABLATE_FAKE_DIR``), then succeed."""
    marker = _marker_dir() / ("flaky-" + hashlib.sha256(config.to_json().encode()).hexdigest()[:16])
    if not marker.exists():
        marker.touch()
        raise RuntimeError(f"flaky failure for {config.task} seed {config.seed}")
    return fake_result(config, on_epoch)


@_takes_settings
def always_failing_trial(config: TrialConfig,
                         on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Raise for seed 1, succeed otherwise (a cell that fails on every attempt)."""
    if config.seed == 1:
        raise ValueError("seed 1 always fails")
    return fake_result(config, on_epoch)


@_takes_settings
def nan_trial(config: TrialConfig, on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Return a result whose scores are NaN."""
    return fake_result(config, on_epoch) | {c.TEST_SCORE: float("nan"), c.VAL_SCORE: float("nan")}


@_takes_settings
def counting_trial(config: TrialConfig, on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Leave one marker file per call in ``ORCA_ABLATE_FAKE_DIR`` (to count executions), then act as fake_trial."""
    key = hashlib.sha256(config.to_json().encode()).hexdigest()[:16]
    (_marker_dir() / f"call-{key}-{uuid.uuid4().hex[:8]}").touch()
    return fake_result(config, on_epoch)


def _marker_dir() -> Path:
    path = os.environ.get("ORCA_ABLATE_FAKE_DIR")
    if not path:
        raise RuntimeError("set ORCA_ABLATE_FAKE_DIR to a directory for this fake trial's marker files")
    return Path(path)


@_takes_settings
def checkpoint_trial(config: TrialConfig, on_epoch: Callable[[int, float], None] | None = None,
                     checkpoint_dir: str | None = None) -> dict[str, Any]:
    """Die (exit 9) on the first call for a cell after leaving a marker in ``checkpoint_dir``; resume on the next.

    The result's details say whether it resumed and which folder it got, so a test sees that a re-run
    of a killed cell is handed the same checkpoint folder.
    """
    if checkpoint_dir is None:
        raise RuntimeError("checkpoint_trial needs the engine's checkpoint_dir")
    marker = Path(checkpoint_dir) / "epoch-1.done"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        os._exit(9)  # killed mid-trial
    result = fake_result(config, on_epoch)
    result[c.DETAILS] = {**result[c.DETAILS], "resumed": True, "checkpoint_dir": checkpoint_dir}
    return result
