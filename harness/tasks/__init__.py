"""Task registry: exact names (``digits``, ``satellite``) and prefixed families (``ucr:NAME``, ``npz:PATH``).

Every task yields normalised train / validation / test tensors (validation from
training data with a seeded split or an official validation split, never from
test), its modality, output kind, loss and metric. ``load_task(name,
data_config, seed)`` is the one entry point.

How to add a task:

1. Write its loader in a new module ``harness/tasks/_NAME.py`` (or beside its kin in
   ``_loaders.py`` / ``_nasbench.py``): ``load(name: str, ctx: LoadContext) -> RawSplits``
   returning raw numpy splits, inputs ``(N, C, L)`` (1D) or ``(N, C, H, W)`` (2D) and
   targets of the task's output kind (see :class:`RawSplits`); read files from
   ``ctx.data_dir``, unpickle only when ``ctx.allow_pickle``, and raise ``DataError``
   naming what is missing. :func:`load_task` does the subsetting, the seeded validation
   split and the normalisation.
2. Register it below with one line, after importing the loader:
   ``register_task(TaskSpec("NAME", "1d" | "2d", load, metric=..., output=..., default_tokens=...,
   description=..., requires=..., available=...))``; a family named ``PREFIX:ARG``
   uses ``register_family("PREFIX", TaskSpec(...))`` and gets the full name in ``load``.

Metrics, losses and output kinds have registries of their own (``harness.metrics``,
``harness.tasks._targets.OUTPUT_KINDS``); a task names them, it does not define them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ..config import DataConfig
from ..errors import ConfigError, DataError
from ._base import LoadContext, RawSplits, TaskData, TaskSpec, prepare
from ._loaders import (
    check_npz,
    check_ucr,
    fashion_mnist_dir,
    list_ucr_sets,
    load_digits,
    load_fashion_mnist,
    load_npz,
    load_synthetic_1d,
    load_synthetic_2d,
    load_ucr,
)
from ._nasbench import (
    NASBENCH_FILES,
    files_present,
    load_darcy_flow,
    load_deepsea,
    load_ecg,
    load_ninapro,
    load_satellite,
    load_spherical,
)
from ._targets import OUTPUT_KINDS, get_output_kind

__all__ = [
    "FAMILIES",
    "LoadContext",
    "NASBENCH_FILES",
    "OUTPUT_KINDS",
    "TASKS",
    "RawSplits",
    "TaskData",
    "TaskInfo",
    "TaskSpec",
    "check_task_data",
    "get_output_kind",
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
                       available=lambda ctx: fashion_mnist_dir(ctx) is not None))
register_task(TaskSpec("synthetic-1d", "1d", load_synthetic_1d, default_tokens=4,
                       description="tiny 3-class sinusoids, length 32 (for tests)"))
register_task(TaskSpec("synthetic-2d", "2d", load_synthetic_2d, default_tokens=4,
                       description="tiny 3-class bar images 8x8 (for tests)"))
register_family("ucr", TaskSpec("ucr", "1d", load_ucr, default_tokens=6,
                                description="UCR/UEA time series, e.g. ucr:ECG200, ucr:Crop",
                                requires="sets bundled with aeon/sktime; more with the 'ucr' extra", check=check_ucr))
register_family("npz", TaskSpec("npz", "auto", load_npz, default_tokens=8,
                                description="your own .npz: x_train, y_train, x_test, y_test [, x_val, y_val]",
                                check=check_npz))


def _nasbench_requires(task: str, pickled: bool) -> str:
    files = " + ".join(NASBENCH_FILES[task]) if task != "ninapro" else "ninaPro/{ninapro,label}_{train,val,test}.npy"
    where = f"NAS-Bench-360's {files} in the data dir (--data-dir or $ORCA_ABLATE_DATA)"
    return where + ("; a pickle: also --allow-pickle" if pickled else "")


def _register_nasbench(name: str, modality: str, load: Callable[[str, LoadContext], RawSplits], *, metric: str,
                       description: str, tokens: int, pickled: bool, output: str = "classes",
                       loss: str = "cross_entropy") -> None:
    register_task(TaskSpec(name, modality, load, metric=metric, loss=loss, output=output, default_tokens=tokens,
                           description=description, requires=_nasbench_requires(name, pickled),
                           available=files_present(name)))


_register_nasbench("satellite", "1d", load_satellite, metric="accuracy", tokens=8, pickled=True,
                   description="NAS-Bench-360 Satellite: series of length 46, 24 classes")
_register_nasbench("deepsea", "1d", load_deepsea, metric="auroc", tokens=40, pickled=False, output="multilabel",
                   loss="bce_logits", description="NAS-Bench-360 DeepSEA: one-hot DNA 4x1000, 36 labels, mean AUROC")
_register_nasbench("ecg", "1d", load_ecg, metric="macro_f1", tokens=40, pickled=True,
                   description="NAS-Bench-360 ECG: windows of 1000, 4 classes, macro F1")
_register_nasbench("spherical", "2d", load_spherical, metric="accuracy", tokens=36, pickled=True,
                   description="NAS-Bench-360 Spherical CIFAR-100: 3x60x60, 100 classes")
_register_nasbench("ninapro", "2d", load_ninapro, metric="accuracy", tokens=64, pickled=False,
                   description="NAS-Bench-360 NinaPro DB5: sEMG 16x52, 18 classes")
_register_nasbench("darcy-flow", "2d", load_darcy_flow, metric="rel_l2", tokens=64, pickled=False, output="dense",
                   loss="mse", description="NAS-Bench-360 Darcy flow: 85x85 maps, relative L2 (lower is better)")


def get_task(name: str) -> TaskSpec:
    """Return the spec of a task name; raise ConfigError listing the choices when unknown."""
    if name in TASKS:
        return TASKS[name]
    prefix, sep, _ = name.partition(":")
    if sep and prefix in FAMILIES:
        return FAMILIES[prefix]
    choices = sorted(TASKS) + [f"{p}:..." for p in sorted(FAMILIES)]
    raise ConfigError(f"unknown task {name!r}; expected one of {choices}")


def check_task_data(name: str, data: DataConfig) -> None:
    """Raise DataError when task ``name``'s data are not here or malformed, without loading them.

    Families check what they can cheaply (``ucr:`` files exist, ``npz:`` array headers fit); exact
    tasks report what they require when ``available`` says no.
    """
    spec = get_task(name)
    ctx = LoadContext(data.data_dir, data.allow_pickle)
    if spec.check is not None:
        spec.check(name, ctx)
    elif not spec.available(ctx):
        raise DataError(f"task {name!r}: its data are not here; it needs {spec.requires} "
                        "(see `orca-ablate tasks --data-dir DIR`)")


def load_task(name: str, data: DataConfig, seed: int) -> TaskData:
    """Return the normalised splits of task ``name`` under ``data`` settings and ``seed``."""
    spec = get_task(name)
    raw = spec.load(name, LoadContext(data.data_dir, data.allow_pickle))
    if spec.modality == "auto":  # npz: decided by the array rank
        modality = {3: "1d", 4: "2d"}.get(raw.x_train.ndim)
        if modality is None:
            raise DataError(f"task {name!r}: x_train has shape {raw.x_train.shape}; "
                            "expected (N, C, L) for 1D or (N, C, H, W) for 2D")
        spec = dataclasses.replace(spec, modality=modality, default_tokens=4 if modality == "2d" else 6)
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
    out = [TaskInfo(s.name, s.modality, s.available(ctx), s.description, s.requires) for s in TASKS.values()]
    ucr = FAMILIES["ucr"]
    sets = list_ucr_sets(ctx)
    out += [TaskInfo(f"ucr:{n}", "1d", True, "UCR/UEA time series", "") for n in sets]
    if "Crop" not in sets:
        out.append(TaskInfo("ucr:Crop", "1d", False, "UCR Crop (the Satellite source), 24 classes", ucr.requires))
    npz = FAMILIES["npz"]
    out.append(TaskInfo("npz:PATH", "1d/2d", True, npz.description, ""))
    return out

