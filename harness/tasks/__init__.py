"""Task registry: exact names (``digits``) and prefixed families (``ucr:NAME``, ``npz:PATH``).

Every task yields normalised train / validation / test tensors (validation from
training data with a seeded split, never from test), its modality, loss and
metric. ``load_task(name, data_config, seed)`` is the one entry point.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DataConfig
from ..errors import ConfigError
from ._base import LoadContext, RawSplits, TaskData, TaskSpec, prepare
from ._loaders import (
    fashion_mnist_dir,
    list_ucr_sets,
    load_digits,
    load_fashion_mnist,
    load_npz,
    load_synthetic_1d,
    load_synthetic_2d,
    load_ucr,
    ucr_sources,
)

__all__ = [
    "FAMILIES",
    "TASKS",
    "RawSplits",
    "TaskData",
    "TaskInfo",
    "TaskSpec",
    "get_task",
    "list_tasks",
    "load_task",
    "register_family",
    "register_task",
]

TASKS: dict[str, TaskSpec] = {}
"""Exact task names -> spec."""
FAMILIES: dict[str, TaskSpec] = {}
"""Prefixes (``ucr``, ``npz``) -> spec template; the part after ``:`` is the loader's argument."""


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task under its exact name; return it."""
    TASKS[spec.name] = spec
    return spec


def register_family(prefix: str, spec: TaskSpec) -> TaskSpec:
    """Add a family of tasks named ``prefix:ARG``; return the template spec."""
    FAMILIES[prefix] = spec
    return spec


register_task(TaskSpec("digits", "2d", load_digits, default_tokens=4,
                       description="scikit-learn 8x8 digits, 10 classes (bundled)"))
register_task(TaskSpec("fashion-mnist", "2d", load_fashion_mnist, default_tokens=16,
                       description="Fashion-MNIST 28x28, 10 classes",
                       requires="Debian package dataset-fashion-mnist (or <data_dir>/fashion-mnist)",
                       available=lambda: fashion_mnist_dir() is not None))
register_task(TaskSpec("synthetic-1d", "1d", load_synthetic_1d, default_tokens=4,
                       description="tiny 3-class sinusoids, length 32 (for tests)"))
register_task(TaskSpec("synthetic-2d", "2d", load_synthetic_2d, default_tokens=4,
                       description="tiny 3-class bar images 8x8 (for tests)"))
register_family("ucr", TaskSpec("ucr", "1d", load_ucr, default_tokens=6,
                                description="UCR/UEA time series, e.g. ucr:ECG200, ucr:Crop",
                                requires="sets bundled with aeon/sktime; more with the 'ucr' extra"))
register_family("npz", TaskSpec("npz", "auto", load_npz, default_tokens=8,
                                description="your own .npz: x_train, y_train, x_test, y_test [, x_val, y_val]"))


def get_task(name: str) -> TaskSpec:
    """Return the spec of a task name; raise ConfigError listing the choices when unknown."""
    if name in TASKS:
        return TASKS[name]
    prefix, sep, _ = name.partition(":")
    if sep and prefix in FAMILIES:
        return FAMILIES[prefix]
    choices = sorted(TASKS) + [f"{p}:..." for p in sorted(FAMILIES)]
    raise ConfigError(f"unknown task {name!r}; expected one of {choices}")


def load_task(name: str, data: DataConfig, seed: int) -> TaskData:
    """Return the normalised splits of task ``name`` under ``data`` settings and ``seed``."""
    spec = get_task(name)
    raw = spec.load(name, LoadContext(data.data_dir, data.allow_pickle))
    if spec.modality == "auto":  # npz: decided by the array rank
        modality = {3: "1d", 4: "2d"}.get(raw.x_train.ndim)
        if modality is None:
            from ..errors import DataError
            raise DataError(f"task {name!r}: x_train has shape {raw.x_train.shape}; "
                            "expected (N, C, L) for 1D or (N, C, H, W) for 2D")
        spec = TaskSpec(spec.name, modality, spec.load, spec.metric, spec.loss, spec.output,
                        4 if modality == "2d" else 6, spec.description)
    return prepare(spec, name, raw, seed=seed, val_fraction=data.val_fraction,
                   max_train_samples=data.max_train_samples, max_test_samples=data.max_test_samples)


@dataclass(frozen=True)
class TaskInfo:
    """One line of ``orca-ablate tasks``."""

    name: str
    modality: str
    available: bool
    description: str
    requires: str


def list_tasks(data_dir: str | None = None) -> list[TaskInfo]:
    """Return the tasks known here, with availability; UCR sets are listed one by one."""
    ctx = LoadContext(data_dir, False)
    out = [TaskInfo(s.name, s.modality, s.available(), s.description, s.requires) for s in TASKS.values()]
    ucr = FAMILIES["ucr"]
    sets = list_ucr_sets(ctx)
    out += [TaskInfo(f"ucr:{n}", "1d", True, "UCR/UEA time series", "") for n in sets]
    if "Crop" not in sets:
        out.append(TaskInfo("ucr:Crop", "1d", False, "UCR Crop (the Satellite source), 24 classes", ucr.requires))
    npz = FAMILIES["npz"]
    out.append(TaskInfo("npz:PATH", "1d/2d", True, npz.description, ""))
    return out


_ = ucr_sources  # re-exported for tests through the module namespace
