"""Entry points of the engine: ``run_study`` (``run``) and ``run_worker`` (``worker``).

``run_study`` creates, resumes or extends the study of a spec, then runs its
missing cells with local worker processes, or with ``workers=0`` runs nothing:
the step a cluster job runs once before its workers. ``run_worker`` joins an
existing study (the spec comes from the study) and takes cells until none are
left; any number of workers on any number of hosts may share a PostgreSQL study
(one host: a journal file). Both record the study's artifact directory.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from ._cells import expand_cells
from ._engine import HEARTBEAT_INTERVAL_S, _Runner
from ._report import StudyReport
from ._spec import StudySpec
from ._status import status_of
from ._storage import DEFAULT_STORAGE, StorageError, default_artifact_dir, is_server_url, journal_path, \
    load_study, mask_url, open_storage, prepare_study, record_artifact_dir, stored_spec
from ._trials import DEFAULT_GRACE_PERIOD, reap_stale
from ._workers import DEFAULT_TRIAL_FN, TrialFn

if TYPE_CHECKING:
    import optuna

__all__ = ["run_study", "run_worker"]


def run_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
              workers: int = 1, inline: bool = False, max_retries: int = 1, trial_fn: str | TrialFn | None = None,
              grace_period: float = DEFAULT_GRACE_PERIOD, heartbeat_interval: float | None = None,
              artifact_dir: str | None = None, progress: bool = True, log: TextIO | None = None) -> StudyReport:
    """Create, resume or extend the study of ``spec`` and run its missing cells; return the report.

    ``workers`` local processes run the trials; with ``workers=0`` the study and its
    cells are created (or extended) and nothing runs: ``worker`` processes on any
    host then take the cells. ``inline`` runs the trials in a thread of this process
    instead (for tests and debugging). ``trial_fn`` is ``harness.run_trial`` unless
    given (a callable importable by worker processes, or ``"module:function"``). A
    cell whose attempt fails is retried up to ``max_retries`` times in this run; stale
    attempts (a killed run's RUNNING trials) are marked FAIL and re-run without
    counting as failures. ``artifact_dir`` is recorded in the study (default: beside a
    SQLite or journal file).
    """
    import optuna

    if workers < 0:
        raise ValueError(f"workers must be 0 (create the study, run nothing) or more, got {workers}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or DEFAULT_STORAGE
    name = study_name or spec.name
    store = open_storage(url)
    if name in optuna.get_all_study_names(store):
        study = optuna.load_study(study_name=name, storage=store)
        stale = reap_stale(store, study._study_id, study.get_trials(deepcopy=False), grace_period=grace_period)
    else:
        stale = []
    study = prepare_study(store, spec, name)
    log = log or sys.stderr
    directory = _artifact_dir(study, url, artifact_dir, log)
    if workers == 0 and not inline:
        report = StudyReport(name, mask_url(url), len(expand_cells(spec)), workers=0, mode="prepare")
    else:
        runner = _Runner(
            store, study, spec, workers=workers, inline=inline, max_retries=max_retries,
            trial_fn=trial_fn or DEFAULT_TRIAL_FN, grace_period=grace_period,
            heartbeat_interval=heartbeat_interval or min(HEARTBEAT_INTERVAL_S, grace_period / 4), log=log,
        )
        report = runner.run(progress=progress)
    report.storage = mask_url(url)
    report.stale = stale + report.stale
    report.artifact_dir = directory
    report.status = status_of(study, spec, grace_period=grace_period)
    report.complete = report.status.counts()["complete"]
    return report


def _artifact_dir(study: optuna.Study, url: str, given: str | None, log: TextIO) -> str | None:
    """Record the study's artifact directory (given, already recorded, or beside the file); return it."""
    recorded = study.user_attrs.get("artifact_dir")
    if given is None and isinstance(recorded, str):
        return recorded
    directory = given or default_artifact_dir(url)
    if directory is None:
        return None
    replaced = record_artifact_dir(study, directory)
    if replaced:
        log.write(f"warning: study {study.study_name!r} kept its artifacts in {replaced}; from now on they go to "
                  f"{study.user_attrs['artifact_dir']} (move the old files there to keep them in the dashboard)\n")
    return str(study.user_attrs["artifact_dir"])


def run_worker(storage: str, study_name: str | None = None, *, max_trials: int | None = None,
               max_retries: int = 1, trial_fn: str | TrialFn | None = None,
               grace_period: float = DEFAULT_GRACE_PERIOD, heartbeat_interval: float | None = None,
               inline: bool = False, progress: bool = True, log: TextIO | None = None) -> StudyReport:
    """Join an existing study and run its free cells one at a time until none are left; return the report.

    The study comes from ``run SPEC --workers 0`` (or any ``run``); its spec is read
    from the study. Each cell is claimed atomically, so any number of workers may
    share the study: on PostgreSQL from any number of hosts, on a journal file from
    one. A worker stops after ``max_trials`` attempts when given; otherwise it also
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
    url = storage or DEFAULT_STORAGE
    if not is_server_url(url) and journal_path(url) is None:
        raise StorageError(f"--storage {mask_url(url)}: workers need a storage that many processes write safely: "
                           "PostgreSQL (postgresql://USER@HOST/DB, any number of hosts) or a journal file "
                           "(journal:///PATH.log, one host); for a SQLite file, run the spec with "
                           "orca-ablate run SPEC --workers K instead")
    store = open_storage(url, must_exist=True)
    try:
        study = load_study(store, study_name)
    except StorageError as exc:
        raise StorageError(f"{exc}; a worker joins an existing study: create it first with "
                           f"orca-ablate run SPEC --storage {mask_url(url)} --workers 0") from None
    spec = stored_spec(study)
    stale = reap_stale(store, study._study_id, study.get_trials(deepcopy=False), grace_period=grace_period)
    runner = _Runner(
        store, study, spec, workers=1, inline=inline, max_retries=max_retries,
        trial_fn=trial_fn or DEFAULT_TRIAL_FN, grace_period=grace_period,
        heartbeat_interval=heartbeat_interval or min(HEARTBEAT_INTERVAL_S, grace_period / 4),
        log=log or sys.stderr, max_attempts=max_trials, mode="worker",
    )
    try:
        report = runner.run(progress=progress)
    except KeyError as exc:  # Optuna's "study not found": the study went away under the worker
        if study.study_name in optuna.get_all_study_names(store):
            raise
        raise StorageError(f"study {study.study_name!r} was deleted or rewritten (a run that adds tasks, seeds "
                           "or levels re-creates it) while this worker ran; start the worker again") from exc
    report.storage = mask_url(url)
    report.stale = stale + report.stale
    artifact_dir = study.user_attrs.get("artifact_dir")
    report.artifact_dir = artifact_dir if isinstance(artifact_dir, str) else None
    report.status = status_of(study, spec, grace_period=grace_period)
    report.complete = report.status.counts()["complete"]
    return report
