"""Entry points of the engine: ``run_study`` (``run``) and ``run_worker`` (``worker``).

``run_study`` creates, resumes or extends the study of a spec, then runs its
missing cells with local worker processes, or with ``workers=0`` runs nothing:
the step a cluster job runs once before its workers. ``run_worker`` joins an
existing study (the spec comes from the study) and takes cells until none are
left; any number of workers on any number of hosts may share a PostgreSQL study
or a journal file on a shared filesystem. Both record the study's artifact directory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from harness.contract import DEFAULT_STORAGE

from ..spec import StudySpec
from ..storage import (StorageError, backend_for, default_artifact_dir, load_study, mask_url, open_storage,
                       prepare_study, record_artifact_dir, recorded_artifact_dir, stored_spec, study_names)
from ._adaptive import advance, describe, rounds, start_rounds
from ._attempts import DEFAULT_GRACE_PERIOD
from ._claims import reap_stale
from ._gpus import assign_gpus, visible_gpus
from ._report import FailedCell, StudyReport
from ._runner import HEARTBEAT_INTERVAL_S, RunOutcome, Runner, WorkerError
from ._status import status_of
from ._workers import DEFAULT_TRIAL_FN, TrialFn, resolve_trial_fn, trial_fn_for

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["run_study", "run_worker"]


def run_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
              workers: int = 1, inline: bool = False, max_retries: int = 1, trial_fn: str | TrialFn | None = None,
              grace_period: float = DEFAULT_GRACE_PERIOD, heartbeat_interval: float | None = None,
              artifact_dir: str | None = None, progress: bool = True, log: TextIO | None = None,
              workers_per_gpu: int = 1) -> StudyReport:
    """Create, resume or extend the study of ``spec`` and run its missing cells; return the report.

    ``workers`` local processes run the trials; with ``workers=0`` the study and its
    cells are created (or extended) and nothing runs: ``worker`` processes on any
    host then take the cells. ``inline`` runs the trials in a thread of this process
    instead (for tests and debugging). The cells run the spec's ``trial_fn:``
    (``harness.run_trial`` without one); ``trial_fn`` replaces the function only, not
    how its names are read (a callable importable by worker processes, or
    ``"module:function"``; the ``ORCA_ABLATE_TRIAL_FN`` environment variable is a testing
    hook for it). A
    cell whose attempt fails is retried up to ``max_retries`` times in this run; stale
    attempts (a killed run's RUNNING trials) are marked FAIL and re-run without
    counting as failures. ``artifact_dir`` is recorded in the study (default: beside a
    SQLite or journal file). On a machine with GPUs each worker process gets one,
    round-robin, at most ``workers_per_gpu`` workers per GPU (``_gpus``).
    """
    import optuna

    if workers < 0:
        raise ValueError(f"workers must be 0 (create the study, run nothing) or more, got {workers}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
    if not inline:
        assign_gpus(workers, visible_gpus(), workers_per_gpu)  # too many workers for the GPUs: refused up front
    function = trial_fn_for(spec, trial_fn)
    _check_trial_fn(function)  # before the study is created: a mistyped function leaves the storage untouched
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = DEFAULT_STORAGE if storage is None else storage
    name = study_name or spec.name
    store = open_storage(url)
    stale: list[int] = []
    if name in study_names(store):
        study = optuna.load_study(study_name=name, storage=store)
        stale = reap_stale(store, study._study_id, grace_period=grace_period)
    study = prepare_study(store, spec, name)
    start_rounds(study, spec)
    log = log or sys.stderr
    directory = _artifact_dir(study, url, artifact_dir, log)
    if workers == 0 and not inline:
        return _report(store, study, spec, url, RunOutcome(stale=stale), grace_period=grace_period, workers=0,
                       mode="prepare", artifact_dir=directory)

    def one_round() -> RunOutcome:
        runner = Runner(store, study, spec, workers=workers, inline=inline, max_retries=max_retries,
                        trial_fn=function, grace_period=grace_period,
                        heartbeat_interval=heartbeat_interval or min(HEARTBEAT_INTERVAL_S, grace_period / 4),
                        log=log, workers_per_gpu=workers_per_gpu)
        return runner.run(progress=progress)

    outcome = _rounds(store, study, spec, one_round, grace_period, log)
    outcome.stale = stale + outcome.stale
    return _report(store, study, spec, url, outcome, grace_period=grace_period, workers=0 if inline else workers,
                   inline=inline, mode="run", artifact_dir=directory)


def run_worker(storage: str, study_name: str | None = None, *, max_trials: int | None = None,
               max_retries: int = 1, trial_fn: str | TrialFn | None = None,
               grace_period: float = DEFAULT_GRACE_PERIOD, heartbeat_interval: float | None = None,
               inline: bool = False, progress: bool = True, log: TextIO | None = None) -> StudyReport:
    """Join an existing study and run its free cells one at a time until none are left; return the report.

    The study comes from ``run SPEC --workers 0`` (or any ``run``); its spec is read
    from the study. Each cell is claimed atomically, so any number of workers may
    share the study from any number of hosts (PostgreSQL, or a journal file on a
    shared filesystem). A worker stops after ``max_trials`` attempts when given; otherwise it also
    waits for cells other workers are running, and re-runs them if their worker dies
    (at once on this host, after ``grace_period`` seconds without a heartbeat
    elsewhere). ``inline`` runs trials in a thread of this process, not a child process.
    """
    import optuna

    if max_trials is not None and max_trials < 1:
        raise ValueError(f"max_trials must be 1 or more, got {max_trials}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = DEFAULT_STORAGE if storage is None else storage
    if backend_for(url).shared_by is None:
        raise StorageError(f"--storage {mask_url(url)}: workers need a storage that many processes write safely: "
                           "PostgreSQL (postgresql://USER@HOST/DB) or a journal file (journal:///PATH.log, on a "
                           "filesystem every worker's host shares); for a SQLite file, run the spec with "
                           "orca-ablate run SPEC --workers K instead")
    store = open_storage(url, must_exist=True)
    try:
        study = load_study(store, study_name)
    except StorageError as exc:
        raise StorageError(f"{exc}; a worker joins an existing study: create it first with "
                           f"orca-ablate run SPEC --storage {mask_url(url)} --workers 0") from None
    spec = stored_spec(study)
    stale = reap_stale(store, study._study_id, grace_period=grace_period)

    def one_round() -> RunOutcome:
        runner = Runner(store, study, spec, workers=1, inline=inline, max_retries=max_retries,
                        trial_fn=trial_fn_for(spec, trial_fn), grace_period=grace_period,
                        heartbeat_interval=heartbeat_interval or min(HEARTBEAT_INTERVAL_S, grace_period / 4),
                        log=log or sys.stderr, max_attempts=max_trials)
        return runner.run(progress=progress)

    try:
        outcome = (_rounds(store, study, spec, one_round, grace_period, log or sys.stderr) if max_trials is None
                   else one_round())
    except KeyError as exc:  # Optuna's "study not found": the study went away under the worker
        if study.study_name in optuna.get_all_study_names(store):
            raise
        raise StorageError(f"study {study.study_name!r} was deleted or rewritten (a run that adds tasks, seeds "
                           "or levels re-creates it) while this worker ran; start the worker again") from exc
    outcome.stale = stale + outcome.stale
    return _report(store, study, spec, url, outcome, grace_period=grace_period, workers=0 if inline else 1,
                   inline=inline, mode="worker", artifact_dir=recorded_artifact_dir(study))


def _rounds(store: BaseStorage, study: optuna.Study, spec: StudySpec, one_round: Callable[[], RunOutcome],
            grace_period: float, log: TextIO) -> RunOutcome:
    """Run the study's cells; for adaptive seeds, take each look once a round is finished and run the next.

    A round with a cell out of retries stops here (the look needs every cell): the report says which,
    and a rerun resumes the same round.
    """
    outcome = one_round()
    while spec.adaptive is not None and not outcome.failed:
        status = status_of(study, spec, grace_period=grace_period)
        finished = status.counts()["complete"] == len(status.cells)
        if not advance(store, study, spec, finished):
            break
        print(describe(rounds(study.user_attrs)[-1]), file=log)
        outcome = outcome + one_round()
    return outcome


def _check_trial_fn(function: str | TrialFn) -> None:
    """Raise WorkerError when a trial function named ``module:function`` cannot be imported here.

    ``harness.run_trial`` is not imported (it loads torch; the workers do that).
    """
    if callable(function) or function == DEFAULT_TRIAL_FN:
        return
    try:
        resolve_trial_fn(function)
    except (ImportError, AttributeError, ValueError) as exc:
        raise WorkerError(f"cannot load the trial function {function!r}: {type(exc).__name__}: {exc}; it must be "
                          "importable here and on every worker host (a module on the Python path or in the "
                          "working directory)") from None


def _report(store: BaseStorage, study: optuna.Study, spec: StudySpec, url: str, outcome: RunOutcome, *,
            grace_period: float, workers: int, mode: str, artifact_dir: str | None,
            inline: bool = False) -> StudyReport:
    """Return the report of a run, a worker or a preparation, with every cell's state read afresh."""
    status = status_of(study, spec, grace_period=grace_period)
    return StudyReport(
        study.study_name, mask_url(url), len(status.cells), complete=status.counts()["complete"],
        ran=outcome.ran, completed_now=outcome.completed_now, stale=outcome.stale,
        failed=[FailedCell(cell, error, attempts) for cell, error, attempts in outcome.failed],
        seconds=outcome.seconds, workers=workers, inline=inline, mode=mode, artifact_dir=artifact_dir,
        status=status, shared_by=backend_for(url).shared_by,
    )


def _artifact_dir(study: optuna.Study, url: str, given: str | None, log: TextIO) -> str | None:
    """Record the study's artifact directory (given, already recorded, or beside the file); return it."""
    recorded = recorded_artifact_dir(study)
    if given is None and recorded is not None:
        return recorded
    directory = given or default_artifact_dir(url)
    if directory is None:
        return None
    replaced = record_artifact_dir(study, directory)
    now = recorded_artifact_dir(study)
    if replaced:
        log.write(f"warning: study {study.study_name!r} kept its artifacts in {replaced}; from now on they go to "
                  f"{now} (move the old files there to keep them in the dashboard)\n")
    return now
