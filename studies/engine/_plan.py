"""What a spec will cost before it runs: cells to run per task and the compute they need.

Seconds per cell come from the study's own COMPLETE trials of that task (the
median of their recorded ``seconds``), else from the other tasks' trials, else,
with ``pilot``, from one trial per task run here and thrown away; otherwise
they are unknown. Core-hours are seconds x cores per worker; GPU-hours the same
with GPUs per worker.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.contract import DEFAULT_STORAGE, PARAM_TASK, SECONDS, journal_path, sqlite_path

from ..spec import Cell, StudySpec, expand_cells
from ..storage import load_study, open_storage, study_names
from ._state import sort_attempts
from ._status import format_table
from ._workers import TrialFn, call_trial, resolve_trial_fn, trial_fn_for

if TYPE_CHECKING:
    import optuna

__all__ = ["Plan", "TaskPlan", "plan_study"]


@dataclass(frozen=True)
class TaskPlan:
    """One task's cells: how many, how many are complete, and the seconds one takes."""

    task: str
    cells: int
    complete: int
    seconds: float | None
    """Estimated seconds per cell, or None when nothing to estimate from."""
    source: str
    """Where ``seconds`` comes from: ``N trials``, ``other tasks``, ``pilot``, or ``unknown``."""

    @property
    def to_run(self) -> int:
        return self.cells - self.complete


@dataclass(frozen=True)
class Plan:
    """The cells of a spec still to run and the compute they need."""

    study_name: str
    exists: bool
    tasks: tuple[TaskPlan, ...]
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0

    @property
    def to_run(self) -> int:
        return sum(t.to_run for t in self.tasks)

    @property
    def seconds(self) -> float | None:
        """Return the compute seconds of the cells to run (one worker each), None when some are unknown."""
        pending = [t for t in self.tasks if t.to_run]
        if any(t.seconds is None for t in pending):
            return None
        return float(sum(t.seconds * t.to_run for t in pending if t.seconds is not None))

    def summary(self) -> str:
        """Return the plan as a table and a closing line with core-hours (and GPU-hours)."""
        rows = [[t.task, t.cells, t.complete, t.to_run, "" if t.seconds is None else f"{t.seconds:.1f}", t.source]
                for t in self.tasks]
        head = (f"study {self.study_name}: {'extends the existing study' if self.exists else 'a new study'}; "
                f"{self.to_run} of {sum(t.cells for t in self.tasks)} cells to run")
        lines = [head, format_table(["task", "cells", "complete", "to run", "s/cell", "estimated from"], rows)]
        total = self.seconds
        if total is None:
            lines.append("compute: unknown for tasks without a completed trial; `orca-ablate plan SPEC --pilot` "
                         "times one trial per task here")
        else:
            need = (f"compute: {total / 3600:.2f} worker-hours ({total / 60:.1f} min) = "
                    f"{total * self.cpus_per_worker / 3600:.2f} core-hours")
            if self.gpus_per_worker:
                need += f", {total * self.gpus_per_worker / 3600:.2f} GPU-hours"
            lines.append(need + f" ({self.cpus_per_worker} core(s) per worker; times of this machine's trials)")
        return "\n".join(lines)


def plan_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
               cpus_per_worker: int = 1, gpus_per_worker: int = 0, pilot: bool = False,
               trial_fn: str | TrialFn | None = None) -> Plan:
    """Return the plan of ``spec`` against its study (which may not exist yet); nothing is written."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or spec.name
    url = DEFAULT_STORAGE if storage is None else storage
    file = journal_path(url) or sqlite_path(url)
    study = None
    if file is None or file.is_file():  # a storage file that does not exist yet holds no study: create nothing
        store = open_storage(url, must_exist=True)
        study = load_study(store, name) if name in study_names(store) else None
    cells = expand_cells(spec)
    complete = _complete(study)
    timings = _seconds_by_task(study)
    pooled = [s for values in timings.values() for s in values]
    tasks = []
    for task in spec.tasks:
        mine = [c for c in cells if c.task == task]
        done = sum(c.ident in complete for c in mine)
        if timings.get(task):
            seconds, source = statistics.median(timings[task]), f"{len(timings[task])} trials"
        elif pooled:
            seconds, source = statistics.median(pooled), "other tasks"
        elif pilot and done < len(mine):
            seconds, source = _pilot(mine[0], spec, resolve_trial_fn(trial_fn_for(spec, trial_fn))), "pilot"
        else:
            seconds, source = None, "unknown"
        tasks.append(TaskPlan(task, len(mine), done, seconds, source))
    return Plan(name, study is not None, tuple(tasks), cpus_per_worker, gpus_per_worker)


def _complete(study: optuna.Study | None) -> frozenset[tuple[str, int]]:
    if study is None:
        return frozenset()
    return sort_attempts(study.get_trials(deepcopy=False), grace_period=float("inf")).complete()


def _seconds_by_task(study: optuna.Study | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    if study is None:
        return out
    for attempt in sort_attempts(study.get_trials(deepcopy=False), grace_period=float("inf")).attempts:
        seconds = attempt.trial.user_attrs.get(SECONDS)
        if attempt.state == "complete" and isinstance(seconds, (int, float)):
            out.setdefault(str(attempt.trial.params.get(PARAM_TASK)), []).append(float(seconds))
    return out


def _pilot(cell: Cell, spec: StudySpec, fn: Callable[..., Any]) -> float:
    start = time.perf_counter()
    call_trial(fn, cell.settings(spec), spec.free)
    return time.perf_counter() - start
