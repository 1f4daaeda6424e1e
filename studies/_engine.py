"""The study engine: run every cell of a spec to COMPLETE exactly once, resumably.

One parent process owns the storage connection; K local worker processes run
trial functions and send results back (``_workers``). The parent claims a cell
by creating its RUNNING trial, refreshes the attempt's heartbeat while it runs,
reports each fine-tuning epoch as an intermediate value, and finally writes the
result. Before telling COMPLETE it checks that no other attempt of the cell is
COMPLETE already (a duplicate is told FAIL with error ``duplicate``), so a cell
ends COMPLETE exactly once even when two runs race on one study.
"""

from __future__ import annotations

import collections
import hashlib
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from harness.errors import OrcaAblateError

from ._cells import Cell, expand_cells, param_distributions
from ._spec import SAMPLERS, StudySpec
from ._status import StudyStatus, status_of
from ._storage import DEFAULT_STORAGE, open_storage, prepare_study
from ._trials import DEFAULT_GRACE_PERIOD, Owner, claim, complete, fail, finite, heartbeat, mark_stale, \
    reap_stale, result_attrs, stale_reason
from ._workers import DEFAULT_TRIAL_FN, InlinePool, TrialFn, WorkerPool, cpu_cores

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["FailedCell", "StudyReport", "WorkerError", "run_study"]

HEARTBEAT_INTERVAL_S = 30.0
MAX_WORKER_DEATHS = 2
"""A cell whose worker process dies this often in one run is reported, not re-run (e.g. out of memory).
Such attempts are stale, so they do not count against ``max_retries``."""
POLL_INTERVAL_S = 5.0
"""How often a run that waits for cells running elsewhere re-reads the study."""


class WorkerError(OrcaAblateError, RuntimeError):
    """The worker processes cannot run trials at all (e.g. the trial function does not import)."""


@dataclass(frozen=True)
class FailedCell:
    """A cell that is not COMPLETE after this run's retries, with its last error."""

    cell: Cell
    error: str
    attempts: int


@dataclass
class StudyReport:
    """What a run did: cell counts, failures, timings; ``exit_code`` is 0 only when every cell is COMPLETE."""

    study_name: str
    storage: str
    total: int
    complete: int = 0
    ran: int = 0
    """Attempts this run finished (COMPLETE or FAIL)."""
    completed_now: int = 0
    stale: list[int] = field(default_factory=list)
    """Trial numbers of stale attempts this run marked FAIL."""
    failed: list[FailedCell] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    status: StudyStatus | None = None
    """Every cell's state at the end of the run."""

    @property
    def exit_code(self) -> int:
        return 0 if self.complete == self.total else 1

    def summary(self) -> str:
        """Return the end-of-run summary: totals, the table by factor level, failed cells with errors."""
        rate = f", {3600 * self.ran / self.seconds:.0f} attempts/hour" if self.ran and self.seconds else ""
        lines = [f"study {self.study_name} in {self.storage}: {self.complete}/{self.total} cells complete; "
                 f"this run: {self.completed_now} completed, {self.ran} attempts finished "
                 f"{f'with {self.workers} worker(s)' if self.workers else 'in this process'} "
                 f"in {self.seconds:.1f} s{rate}"]
        if self.stale:
            lines.append(f"re-ran {len(self.stale)} stale attempts of killed runs (trials {_numbers(self.stale)})")
        if self.status is not None:
            lines += ["", self.status.table()]
        if self.failed:
            lines += ["", f"{len(self.failed)} cells failed after their retries:"]
            lines += [f"  {f.cell.label()}: {f.error} ({f.attempts} attempts)" for f in self.failed]
            lines.append("Fix the cause and run again: finished cells are skipped, failed ones are retried.")
        return "\n".join(lines)


def _numbers(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in sorted(values)[:10])
    return shown + (", ..." if len(values) > 10 else "")


def run_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
              workers: int = 1, max_retries: int = 1, trial_fn: str | TrialFn | None = None,
              grace_period: float = DEFAULT_GRACE_PERIOD, heartbeat_interval: float | None = None,
              progress: bool = True, log: TextIO | None = None) -> StudyReport:
    """Create or resume the study of ``spec`` and run its missing cells; return the report.

    ``workers`` local processes run the trials (0: a thread of this process, for
    debugging). ``trial_fn`` is ``harness.run_trial`` unless given (a callable
    importable by worker processes, or ``"module:function"``). A cell whose attempt fails is
    retried up to ``max_retries`` times in this run; stale attempts (a killed run's
    RUNNING trials) are marked FAIL and re-run without counting as failures.
    """
    import optuna

    if workers < 0:
        raise ValueError(f"workers must be 0 (run trials in this process) or more, got {workers}")
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
    runner = _Runner(
        store, study, spec, workers=workers, max_retries=max_retries,
        trial_fn=trial_fn or DEFAULT_TRIAL_FN, grace_period=grace_period,
        heartbeat_interval=heartbeat_interval or min(HEARTBEAT_INTERVAL_S, grace_period / 4),
        log=log or sys.stderr,
    )
    report = runner.run(progress=progress)
    report.storage = url
    report.stale = stale + report.stale
    report.status = status_of(study, spec, grace_period=grace_period)
    return report


@dataclass
class _Job:
    cell: Cell
    trial_id: int
    worker_pid: int
    config: dict[str, Any] = field(default_factory=dict)
    epochs: dict[int, float] = field(default_factory=dict)


class _Runner:
    """The parent's loop: claim cells, feed workers, record what they report."""

    def __init__(self, storage: BaseStorage, study: optuna.Study, spec: StudySpec, *, workers: int,
                 max_retries: int, trial_fn: str | TrialFn, grace_period: float, heartbeat_interval: float,
                 log: TextIO) -> None:
        self.storage = storage
        self.study = study
        self.study_id = study._study_id
        self.spec = spec
        self.cells = expand_cells(spec)
        self.distributions = param_distributions(spec)
        self.max_retries = max_retries
        self.trial_fn = trial_fn
        self.grace_period = grace_period
        self.heartbeat_interval = heartbeat_interval
        self.workers = workers
        self.log = log
        self.host = socket.gethostname()
        self.report = StudyReport(study.study_name, "", len(self.cells), workers=workers)
        self.jobs: dict[int, _Job] = {}
        self.next_job = 0
        self.errors: collections.Counter[tuple[str, int]] = collections.Counter()
        self.deaths: collections.Counter[tuple[str, int]] = collections.Counter()
        self.last_error: dict[tuple[str, int], str] = {}
        self.complete: set[tuple[str, int]] = set()
        self.elsewhere: set[tuple[str, int]] = set()
        self.todo: collections.deque[Cell] = collections.deque()
        self.gave_up: set[tuple[str, int]] = set()
        self.bar: Any = None

    # -- the loop ----------------------------------------------------------------------------

    def run(self, *, progress: bool) -> StudyReport:
        from tqdm import tqdm

        start = time.perf_counter()
        self.scan()
        self.todo.extend(c for c in self.cells if c.ident not in self.complete | self.elsewhere)
        self.bar = bar = tqdm(total=len(self.cells), initial=len(self.complete), unit="cell", file=self.log,
                              desc=self.study.study_name, disable=not progress, dynamic_ncols=True)
        pool: WorkerPool | InlinePool | None = None
        last_beat = last_poll = time.monotonic()
        try:
            while self.todo or self.jobs or self.elsewhere:
                if self.todo and pool is None:
                    pool = self.start_pool()
                if pool is not None:
                    self.feed(pool)
                    events = pool.wait(timeout=1.0)
                    for event in events:
                        if event.kind in ("epoch", "fatal"):
                            self.handle(event)
                    self.feed(pool)  # freed workers start their next cell before the parent records results
                    for event in events:
                        if event.kind not in ("epoch", "fatal"):
                            self.handle(event)
                else:
                    time.sleep(min(1.0, POLL_INTERVAL_S))
                now = time.monotonic()
                if self.jobs and now - last_beat >= self.heartbeat_interval:
                    for job in self.jobs.values():
                        heartbeat(self.storage, job.trial_id)
                    last_beat = now
                if self.elsewhere and not self.todo and now - last_poll >= POLL_INTERVAL_S:
                    self.poll_elsewhere()
                    last_poll = now
                bar.set_postfix(running=len(self.jobs), failed=len(self.gave_up), refresh=False)
        except BaseException as exc:
            reason = f"the run was stopped ({type(exc).__name__})"
            for job in self.jobs.values():
                try:
                    mark_stale(self.storage, job.trial_id, reason)
                except Exception:  # noqa: BLE001 - the next run finds it stale anyway; keep the first error
                    pass
            if pool is not None:
                pool.close(kill=True)
            bar.close()
            raise
        if pool is not None:
            pool.close()
        bar.close()
        self.report.complete = sum(c.ident in self.complete for c in self.cells)
        self.report.failed = [FailedCell(c, self.last_error.get(c.ident, "not run"),
                                         self.errors[c.ident] + self.deaths[c.ident])
                              for c in self.cells if c.ident in self.gave_up]
        self.report.seconds = time.perf_counter() - start
        return self.report

    def scan(self) -> None:
        """Read which cells are COMPLETE, and which run elsewhere (a live owner's RUNNING attempt)."""
        from optuna.trial import TrialState

        self.complete.clear()
        self.elsewhere.clear()
        mine = {job.trial_id for job in self.jobs.values()}
        for trial in self.storage.get_all_trials(self.study_id, deepcopy=False):
            ident = _ident(trial)
            if ident is None:
                continue
            if trial.state == TrialState.COMPLETE:
                self.complete.add(ident)
            elif trial.state == TrialState.RUNNING and trial._trial_id not in mine:
                self.elsewhere.add(ident)
        self.elsewhere -= self.complete

    def poll_elsewhere(self) -> None:
        """Re-read the study while waiting for other runs' attempts: reap stale ones, take over failed ones."""
        mine = {job.trial_id for job in self.jobs.values()}
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        self.report.stale += reap_stale(self.storage, self.study_id, trials, grace_period=self.grace_period,
                                        exclude=mine)
        waiting = set(self.elsewhere)
        before = len(self.complete)
        self.scan()
        self.bar.update(len(self.complete) - before)
        running = {job.cell.ident for job in self.jobs.values()}
        for cell in self.cells:
            if cell.ident in waiting and cell.ident not in self.complete | self.elsewhere | running:
                self.todo.append(cell)

    # -- one attempt -------------------------------------------------------------------------

    def start_pool(self) -> WorkerPool | InlinePool:
        """Return the worker processes (K of them, at most one per cell to do), or the inline runner."""
        if self.workers == 0:
            try:
                return InlinePool(self.trial_fn)
            except (ImportError, AttributeError, ValueError) as exc:
                raise WorkerError(f"cannot load the trial function {self.trial_fn!r}: "
                                  f"{type(exc).__name__}: {exc}") from None
        return WorkerPool(min(self.workers, len(self.todo)), self.trial_fn, max(1, cpu_cores() // self.workers))

    def feed(self, pool: WorkerPool | InlinePool) -> None:
        """Give every idle worker the next cell that no other run holds."""
        for worker in pool.idle():
            while self.todo:
                cell = self.todo.popleft()
                if self.held_elsewhere(cell) is None and self.dispatch(pool, worker, cell):
                    break

    def held_elsewhere(self, cell: Cell, below: int | None = None) -> str | None:
        """Return "complete" or "running" when another attempt has ``cell``, else None; re-reads the study.

        "running" means a live attempt of another run (numbered below ``below``, when
        given); stale ones found on the way are marked so.
        """
        from optuna.trial import TrialState

        host, now = socket.gethostname(), time.time()
        mine = {job.trial_id for job in self.jobs.values()}
        holder = None
        for trial in self.storage.get_all_trials(self.study_id, deepcopy=False,
                                                 states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if _ident(trial) != cell.ident or trial._trial_id in mine:
                continue
            if trial.state == TrialState.COMPLETE:
                if cell.ident not in self.complete:
                    self.complete.add(cell.ident)
                    self.bar.update(1)
                return "complete"
            if below is not None and trial.number >= below:
                continue
            reason = stale_reason(trial, host=host, now=now, grace_period=self.grace_period)
            if reason is None:
                holder = "running"
            elif mark_stale(self.storage, trial._trial_id, reason):
                self.report.stale.append(trial.number)
        if holder:
            self.elsewhere.add(cell.ident)  # wait for the other run at the end
        return holder

    def dispatch(self, pool: WorkerPool | InlinePool, worker: Any, cell: Cell) -> bool:
        """Claim ``cell`` and send it to ``worker``; return False when another run claimed it first.

        Two runs may claim one cell at the same moment. Trial numbers are assigned
        by the storage in one order for everyone, so after claiming, each re-reads
        the cell: the attempt with the lower number runs, the other withdraws.
        """
        search = self.sample_search(cell) if self.spec.search else {}
        config = cell.config(self.spec, search).to_dict()
        trial_id = claim(self.storage, self.study_id, cell, config=config, distributions=self.distributions,
                         owner=Owner.here(worker.pid), search_params=search)
        number = self.storage.get_trial(trial_id).number
        holder = self.held_elsewhere(cell, below=number)
        if holder is not None:
            mark_stale(self.storage, trial_id, f"withdrawn: the cell is {holder} in another run's attempt")
            return False
        job_id = self.next_job
        self.next_job += 1
        self.jobs[job_id] = _Job(cell, trial_id, worker.pid, config)
        pool.submit(worker, job_id, config)
        return True

    def handle(self, event: Any) -> None:
        if event.kind == "fatal":
            raise WorkerError(str(event.payload[0]))
        job = self.jobs.get(event.job) if event.job is not None else None
        if job is None:
            return
        if event.kind == "epoch":
            epoch, score = event.payload
            if finite(score) is not None:
                self.storage.set_trial_intermediate_value(job.trial_id, epoch, score)
                job.epochs[epoch] = score
            return
        del self.jobs[event.job]
        self.report.ran += 1
        if event.kind == "done":
            self.finish(job, event.payload[0], event.payload[1])
        elif event.kind == "error":
            message, trace, seconds = event.payload
            fail(self.storage, job.trial_id, message, {"traceback": trace, "seconds": seconds})
            self.failed(job.cell, message, self.errors)
        elif event.kind == "died":
            code = event.payload[0]
            how = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            message = f"worker process {job.worker_pid} died ({how})"
            mark_stale(self.storage, job.trial_id, message)
            self.failed(job.cell, message, self.deaths, MAX_WORKER_DEATHS - 1)

    def failed(self, cell: Cell, message: str, counter: collections.Counter[tuple[str, int]],
               retries: int | None = None) -> None:
        """Queue a failed cell again, unless it used up its retries in this run."""
        counter[cell.ident] += 1
        self.last_error[cell.ident] = message
        if counter[cell.ident] <= (self.max_retries if retries is None else retries):
            self.todo.append(cell)
        else:
            self.gave_up.add(cell.ident)
            self.log.write(f"\n{cell.label()}: failed after {counter[cell.ident]} attempts: {message}\n")

    def finish(self, job: _Job, result: Mapping[str, Any], seconds: float) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        attrs = result_attrs(result, seconds)
        if attrs.get("config") == job.config:
            del attrs["config"]  # written when the cell was claimed
        value = finite(result.get(self.spec.metric))
        problem = None
        if value is None:
            problem = f"metric {self.spec.metric} is {result.get(self.spec.metric)!r}, not a finite number"
        elif self.spec.search and result.get("direction") not in (None, self.spec.direction):
            problem = (f"the task's {result.get('metric')} is to {result.get('direction')}, but the spec says "
                       f"direction: {self.spec.direction}; set direction: {result.get('direction')}")
        if problem:
            fail(self.storage, job.trial_id, problem, attrs)
            self.failed(job.cell, problem, self.errors)
            return
        assert value is not None
        curve = result.get("val_curve") or []
        epochs = {i + 1: float(v) for i, v in enumerate(curve) if finite(v) is not None and i + 1 not in job.epochs}
        duplicate = self.completed_by(job.cell)
        if duplicate is not None:
            fail(self.storage, job.trial_id, f"duplicate: cell already COMPLETE in trial {duplicate}", attrs)
        else:
            try:
                complete(self.storage, job.trial_id, value, attrs, epochs)
            except UpdateFinishedTrialError:
                # Another run marked this attempt stale while it ran; keep the result as a new trial.
                self.record_late(job, value, attrs)
            self.report.completed_now += 1
        if job.cell.ident not in self.complete:
            self.complete.add(job.cell.ident)
            self.bar.update(1)

    def completed_by(self, cell: Cell) -> int | None:
        """Return the number of a COMPLETE trial of ``cell`` in storage (read afresh), or None."""
        from optuna.trial import TrialState

        for trial in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
            if _ident(trial) == cell.ident:
                return trial.number
        return None

    def record_late(self, job: _Job, value: float, attrs: Mapping[str, Any]) -> None:
        from optuna.trial import TrialState, create_trial

        old = self.storage.get_trial(job.trial_id)
        trial = create_trial(
            state=TrialState.COMPLETE, value=value, params=old.params, distributions=old.distributions,
            user_attrs={**old.user_attrs, **attrs, "late": True, "stale": False, "error": None},
            intermediate_values={**old.intermediate_values, **job.epochs},
        )
        self.storage.create_new_trial(self.study_id, template_trial=trial)

    def sample_search(self, cell: Cell) -> dict[str, Any]:
        """Return values of the search dimensions for one slot, from the sampler fed with this cell's trials."""
        import importlib

        import optuna
        from optuna.trial import TrialState, create_trial

        dims = {d.path: d.distribution() for d in self.spec.search}
        history = [t for t in self.storage.get_all_trials(self.study_id, deepcopy=False,
                                                          states=(TrialState.COMPLETE,))
                   if t.user_attrs.get("cell") == cell.key]
        module, _, name = SAMPLERS[self.spec.sampler].rpartition(".")
        seed = int(hashlib.sha256(f"{cell.key}#{cell.slot}#{len(history)}".encode()).hexdigest()[:8], 16)
        sampler: Callable[..., Any] = getattr(importlib.import_module(module), name)
        sub = optuna.create_study(direction=self.spec.direction, sampler=sampler(seed=seed))
        for trial in history:
            sub.add_trial(create_trial(params={p: trial.params[p] for p in dims}, distributions=dims,
                                       value=trial.value))
        return dict(sub.ask(dims).params)


def _ident(trial: FrozenTrial) -> tuple[str, int] | None:
    key = trial.user_attrs.get("cell")
    if not isinstance(key, str):
        return None
    slot = trial.user_attrs.get("slot", 0)
    return key, slot if isinstance(slot, int) else 0
