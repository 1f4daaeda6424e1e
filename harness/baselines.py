"""Classical baselines scored on exactly the splits an ORCA trial uses: a registry and ``run_baseline``.

``run_baseline(config, name)`` loads the task as :func:`harness.run_trial` does
(``load_task(config.task, config.data, config.seed)``: the same seeded train /
validation split and the same test subset), fits on the training split, tunes its
hyperparameter (if it has one) on the validation split only, and scores the whole
test split with the task's metric. It returns a dict with the fields of a
:class:`harness.TrialResult`, so a study stores and reads it like a trial.

Every estimator comes from scikit-learn or aeon and is seeded with ``config.seed``.
Like the ORCA trial, a baseline is fit on the training split alone (validation
selects, it is not trained on).

How to add a baseline: write ``_fit_NAME(task, metric, seed) -> BaselineFit`` below
and one line in :data:`BASELINES`; if it should run by default, add it to
:data:`DEFAULTS`. This module imports only the standard library at import time;
torch, numpy, scikit-learn and aeon load when a baseline runs.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import contract
from .config import TrialConfig
from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .metrics import Metric
    from .tasks import TaskData

__all__ = ["BASELINES", "DEFAULTS", "BaselineFit", "BaselineSpec", "check_baseline", "default_baselines",
           "get_baseline", "run_baseline"]

LOGREG_C = (0.01, 0.1, 1.0, 10.0)
"""Inverse regularisation strengths of ``logreg`` and ``logreg-multilabel``, chosen on validation."""
RIDGE_ALPHA = (0.1, 1.0, 10.0, 100.0, 1000.0)
"""Regularisation strengths of ``ridge``, chosen on validation."""
LOGREG_MAX_ITER = 5000
"""lbfgs iterations: enough for standardised pixels and series to converge."""


@dataclass(frozen=True)
class BaselineFit:
    """What a baseline's fit-and-predict function returns: outputs on validation and test, and its settings.

    ``val_out`` (N_val, ...) and ``test_out`` (N_test, ...) have the layout the task's
    metric takes *before* decoding: class scores (N, K) for ``classes``, label scores
    (N, K) for ``multilabel``, normalised maps (N, *S') for ``dense``.
    """

    val_out: torch.Tensor
    test_out: torch.Tensor
    params: dict[str, Any]
    """The hyperparameters used (the chosen value of a tuned one)."""
    tuning: dict[str, float] = field(default_factory=dict)
    """Validation score per candidate value of the tuned hyperparameter (empty when nothing is tuned)."""


FitPredict = Callable[["TaskData", "Metric", int], BaselineFit]


@dataclass(frozen=True)
class BaselineSpec:
    """A registered baseline: the task outputs and modalities it applies to, and its fit-and-predict function."""

    name: str
    outputs: tuple[str, ...]
    """Output kinds (``classes``, ``multilabel``, ``dense``) it predicts."""
    modalities: tuple[str, ...]
    """``1d`` and / or ``2d``."""
    description: str
    fit: FitPredict = field(repr=False, compare=False)
    """``fit(task, metric, seed) -> BaselineFit``: fit on train, tune on validation, predict validation and test."""

    def applies(self, modality: str, output: str) -> bool:
        """Return whether the baseline applies to a task of this modality and output kind."""
        return modality in self.modalities and output in self.outputs


# -- helpers: flat numpy views, scores in the metric's layout, selection on validation ----------------------


def _flat(x: torch.Tensor) -> np.ndarray:
    """Return (N, D) numpy of a (N, ...) tensor: series and images flattened, channels first."""
    return x.reshape(len(x), -1).numpy()


def _class_scores(estimator: Any, x: np.ndarray, num_classes: int) -> torch.Tensor:
    """Return (N, num_classes) float64 scores whose argmax is the estimator's prediction.

    Probabilities where the estimator has them, else decision values (a binary
    decision d becomes the pair (-d, d)). Classes absent from the training subset
    score -inf, so they are never predicted.
    """
    import numpy as np
    import torch

    if hasattr(estimator, "predict_proba"):
        s = estimator.predict_proba(x)
    else:
        d = estimator.decision_function(x)
        s = np.stack([-d, d], axis=1) if d.ndim == 1 else d
    out = np.full((len(x), num_classes), -np.inf)
    out[:, np.asarray(estimator.classes_, dtype=np.int64)] = s
    return torch.from_numpy(out)


def _score(metric: Metric, task: TaskData, out: torch.Tensor, y: torch.Tensor) -> float:
    """Return the metric on decoded outputs and targets (what ``run_trial`` does on validation and test)."""
    return float(metric.fn(task.decode(out), task.decode(y)))


def _select(task: TaskData, metric: Metric, name: str, grid: Sequence[float], make: Callable[[float], Any],
            predict: Callable[[Any, np.ndarray], torch.Tensor], y_fit: np.ndarray) -> BaselineFit:
    """Return the fit whose validation score is best over ``grid`` (first one on ties), with every score.

    ``make(value)`` builds an unfitted estimator, ``predict(estimator, x)`` its outputs
    in the metric's layout; each candidate is fit on the training split only.
    """
    x_tr, x_va, x_te = _flat(task.x_train), _flat(task.x_val), _flat(task.x_test)
    best: tuple[float, Any, Any, torch.Tensor] | None = None
    tuning: dict[str, float] = {}
    for value in grid:
        est = make(value).fit(x_tr, y_fit)
        out = predict(est, x_va)
        score = _score(metric, task, out, task.y_val)
        tuning[repr(value)] = score
        if best is None or metric.better(score, best[0]):
            best = (score, value, est, out)
    assert best is not None  # grids are non-empty
    _, value, est, val_out = best
    return BaselineFit(val_out, predict(est, x_te), {name: value}, tuning)


def _fixed(task: TaskData, estimator: Any, predict: Callable[[Any, np.ndarray], torch.Tensor], y_fit: np.ndarray,
           params: dict[str, Any], x: Callable[[torch.Tensor], np.ndarray] = _flat) -> BaselineFit:
    """Return the fit of one estimator with no tuned hyperparameter."""
    est = estimator.fit(x(task.x_train), y_fit)
    return BaselineFit(predict(est, x(task.x_val)), predict(est, x(task.x_test)), params)


def _dense_out(task: TaskData) -> Callable[[Any, np.ndarray], torch.Tensor]:
    import torch

    shape = task.target_shape
    return lambda est, x: torch.from_numpy(est.predict(x).reshape(len(x), *shape)).float()


# -- the baselines ---------------------------------------------------------------------------------------------


def _fit_minirocket(task: TaskData, metric: Metric, seed: int) -> BaselineFit:
    """aeon's MiniRocketClassifier pipeline: MiniRocket features, scaling, RidgeClassifierCV (alpha by LOO-CV)."""
    import numpy as np
    from aeon.transformations.collection.convolution_based import MiniRocket
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(MiniRocket(n_kernels=10_000, random_state=seed), StandardScaler(with_mean=False),
                         RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    fit = _fixed(task, pipe, lambda est, x: _class_scores(est, x, task.num_classes), task.y_train.numpy(),
                 {"n_kernels": 10_000}, x=lambda t: t.numpy().astype(np.float64))
    return BaselineFit(fit.val_out, fit.test_out, {**fit.params, "alpha": float(pipe[-1].alpha_)})


def _fit_knn(task: TaskData, metric: Metric, seed: int) -> BaselineFit:
    """1-nearest neighbour, Euclidean distance on flattened inputs (no randomness; the seed has nothing to seed)."""
    from sklearn.neighbors import KNeighborsClassifier

    est = KNeighborsClassifier(n_neighbors=1, metric="euclidean")
    return _fixed(task, est, lambda e, x: _class_scores(e, x, task.num_classes), task.y_train.numpy(),
                  {"n_neighbors": 1, "metric": "euclidean"})


def _fit_logreg(task: TaskData, metric: Metric, seed: int) -> BaselineFit:
    """Multinomial logistic regression on flattened inputs; C chosen on validation."""
    from sklearn.linear_model import LogisticRegression

    fit = _select(task, metric, "C", LOGREG_C,
                  lambda c: LogisticRegression(C=c, max_iter=LOGREG_MAX_ITER, random_state=seed),
                  lambda e, x: _class_scores(e, x, task.num_classes), task.y_train.numpy())
    return BaselineFit(fit.val_out, fit.test_out, {**fit.params, "max_iter": LOGREG_MAX_ITER}, fit.tuning)


def _fit_logreg_multilabel(task: TaskData, metric: Metric, seed: int) -> BaselineFit:
    """One logistic regression per label (one-vs-rest) on flattened inputs; C chosen on validation."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    fit = _select(task, metric, "C", LOGREG_C,
                  lambda c: OneVsRestClassifier(LogisticRegression(C=c, max_iter=LOGREG_MAX_ITER, random_state=seed)),
                  lambda e, x: torch.from_numpy(e.predict_proba(x)).double(), task.y_train.numpy().astype(int))
    return BaselineFit(fit.val_out, fit.test_out, {**fit.params, "max_iter": LOGREG_MAX_ITER}, fit.tuning)


def _fit_ridge(task: TaskData, metric: Metric, seed: int) -> BaselineFit:
    """Ridge regression from flattened inputs to flattened (normalised) target maps; alpha chosen on validation."""
    from sklearn.linear_model import Ridge

    return _select(task, metric, "alpha", RIDGE_ALPHA, lambda a: Ridge(alpha=a, random_state=seed),
                   _dense_out(task), _flat(task.y_train))


def _fit_mean(task: TaskData, metric: Metric, seed: int) -> BaselineFit:
    """The training mean map for every input (scikit-learn's DummyRegressor)."""
    from sklearn.dummy import DummyRegressor

    return _fixed(task, DummyRegressor(strategy="mean"), _dense_out(task), _flat(task.y_train), {"strategy": "mean"})


BASELINES: dict[str, BaselineSpec] = {spec.name: spec for spec in (
    BaselineSpec("minirocket", ("classes",), ("1d",), "aeon MiniRocket (10,000 kernels) + RidgeClassifierCV",
                 _fit_minirocket),
    BaselineSpec("knn", ("classes",), ("1d", "2d"), "1-nearest neighbour, Euclidean on flattened inputs", _fit_knn),
    BaselineSpec("logreg", ("classes",), ("1d", "2d"),
                 f"logistic regression on flattened inputs, C in {list(LOGREG_C)} chosen on validation", _fit_logreg),
    BaselineSpec("ridge", ("dense",), ("1d", "2d"),
                 f"ridge regression on flattened inputs, alpha in {list(RIDGE_ALPHA)} chosen on validation",
                 _fit_ridge),
    BaselineSpec("mean", ("dense",), ("1d", "2d"), "the training mean map", _fit_mean),
    BaselineSpec("logreg-multilabel", ("multilabel",), ("1d", "2d"),
                 f"one-vs-rest logistic regression per label, C in {list(LOGREG_C)} chosen on validation",
                 _fit_logreg_multilabel),
)}
"""Baselines by name."""

DEFAULTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("1d", "classes"): ("minirocket", "knn"),
    ("2d", "classes"): ("logreg", "knn"),
    ("1d", "dense"): ("ridge", "mean"),
    ("2d", "dense"): ("ridge", "mean"),
    ("1d", "multilabel"): ("logreg-multilabel",),
    ("2d", "multilabel"): ("logreg-multilabel",),
}
"""(modality, output kind) -> the baselines ``baselines: default`` runs."""


def default_baselines(modality: str, output: str) -> list[str]:
    """Return the default baselines of a task's modality (``1d`` / ``2d``) and output kind; ConfigError if unknown."""
    names = DEFAULTS.get((modality, output))
    if names is None:
        raise ConfigError(f"no default baselines for modality {modality!r} and output {output!r}; expected one of "
                          f"{sorted(f'{m}/{o}' for m, o in DEFAULTS)}")
    return list(names)


def get_baseline(name: str) -> BaselineSpec:
    """Return a registered baseline; raise ConfigError listing the choices when unknown."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return BASELINES[name]


def check_baseline(name: str, modality: str, output: str, task: str = "the task") -> BaselineSpec:
    """Return the baseline ``name`` when it applies to ``modality`` and ``output``; else raise ConfigError.

    The message names the baselines that do apply.
    """
    spec = get_baseline(name)
    if not spec.applies(modality, output):
        fits = sorted(b.name for b in BASELINES.values() if b.applies(modality, output))
        raise ConfigError(f"baseline {name!r} does not apply to {task} ({modality}, {output} outputs); "
                          f"expected one of {fits}")
    return spec


def run_baseline(config: TrialConfig, baseline: str,
                 on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Return the result of one baseline on ``config``'s task, data settings and seed, as TrialResult fields.

    Only ``config.task``, ``config.data`` and ``config.seed`` matter. The splits are
    ``load_task``'s, as in ``run_trial``; the test score is the task metric on the whole
    (decoded) test split, the validation score that of the selected fit.
    ``on_epoch(1, val_score)`` is called once, after fitting. OTDD fields are NaN (there
    is no embedder), ``trainable_params`` is 0 and the device is ``cpu``.
    """
    get_baseline(baseline)  # an unknown name fails before any data are read
    from .metrics import get_metric, metrics_for
    from .tasks import check_task_data, load_task
    from .trial import versions

    check_task_data(config.task, config.data)
    t0 = time.perf_counter()
    task = load_task(config.task, config.data, config.seed)
    spec = check_baseline(baseline, task.modality, task.output, f"task {config.task!r}")
    metric = get_metric(task.metric)
    t_load = time.perf_counter()
    fit = spec.fit(task, metric, config.seed)
    t_fit = time.perf_counter()
    val_score = _score(metric, task, fit.val_out, task.y_val)
    out, y_test = task.decode(fit.test_out), task.decode(task.y_test)
    test_metrics = {m.name: float(m.fn(out, y_test)) for m in metrics_for(task.output)}
    t_end = time.perf_counter()
    if on_epoch is not None:
        on_epoch(1, val_score)
    return {
        contract.TEST_SCORE: test_metrics[metric.name], contract.VAL_SCORE: val_score,
        contract.METRIC: metric.name, contract.DIRECTION: metric.direction, contract.MODALITY: task.modality,
        contract.OTDD_BEFORE: float("nan"), contract.OTDD_AFTER: float("nan"), contract.OTDD_CURVE: [],
        contract.VAL_CURVE: [val_score], contract.BEST_EPOCH: 1,
        contract.SECONDS: {"load": t_load - t0, "fit": t_fit - t_load, "evaluate": t_end - t_fit,
                           "total": t_end - t0},
        contract.TRAINABLE_PARAMS: 0,
        contract.PEAK_MEM_MB: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        contract.DEVICE: "cpu", contract.CONFIG: config.to_dict(), contract.VERSIONS: {**versions(), **_versions()},
        contract.DETAILS: {
            "baseline": baseline, "params": fit.params, "tuning": fit.tuning, "description": spec.description,
            "n_train": len(task.x_train), "n_val": len(task.x_val), "n_test": len(task.x_test),
            "num_classes": task.num_classes, "output": task.output, "target_shape": list(task.target_shape),
            contract.TEST_METRICS: test_metrics,
        },
    }


def _versions() -> dict[str, str]:
    """Return the versions of the libraries the baselines come from."""
    from importlib import metadata

    out = {}
    for dist in ("scikit-learn", "aeon"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
