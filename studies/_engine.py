"""The study engine: run every cell of a spec to COMPLETE exactly once, resumably.

One process owns the storage connection; K local worker processes run trial
functions and send results back (``_workers``). The owner claims a cell by
creating its RUNNING trial (``_trials.claim_next``), refreshes the attempt's
heartbeat while it runs, reports each fine-tuning epoch as an intermediate
value, and finally writes the result. Before telling COMPLETE it checks that no
other attempt of the cell is COMPLETE already (a duplicate is told FAIL with
error ``duplicate``), so a cell ends COMPLETE exactly once even when several
runs or workers share one study. On PostgreSQL the claim and that check hold the
study lock, so they are atomic across hosts.

The same loop serves ``run`` (``_runs.run_study``: this process creates or
extends the study) and ``worker`` (``_runs.run_worker``: it joins an existing study).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from harness.errors import OrcaAblateError

from ._cells import Cell, expand_cells, param_distributions
from ._database import ATTEMPT_ATTR, StorageError
from ._rdb_direct import LockLost, batched, complete_attempt, study_lock
from ._report import FailedCell, StudyReport
from ._spec import SAMPLERS, StudySpec
from ._trials import Claimed, Owner, claim_next, fail, finite, heartbeat, mark_stale, reap_stale, result_attrs, \
    stale_reason, tell_complete, trial_ident, write_result
from ._workers import InlinePool, TrialFn, WorkerPool, cpu_cores

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["HEARTBEAT_INTERVAL_S", "WorkerError"]

HEARTBEAT_INTERVAL_S = 30.0
MAX_WORKER_DEATHS = 2
"""A cell whose worker process dies this often in one run is reported, not re-run (e.g. out of memory).
Such attempts are stale, so they do not count against ``max_retries``."""
POLL_INTERVAL_S = 5.0
"""How often a run that waits for cells running elsewhere re-reads the study."""


class WorkerError(OrcaAblateError, RuntimeError):
    """The worker processes cannot run trials at all (e.g. the trial function does not import)."""


@dataclass
class _Job:
    cell: Cell
    trial_id: int
    worker_pid: int
    config: dict[str, Any] = field(default_factory=dict)
    epochs: dict[int, float] = field(default_factory=dict)


class _Runner:
    """The storage owner's loop: claim cells, feed workers, record what they report."""

    def __init__(self, storage: BaseStorage, study: optuna.Study, spec: StudySpec, *, workers: int,
                 max_retries: int, trial_fn: str | TrialFn, grace_period: float, heartbeat_interval: float,
                 log: TextIO, inline: bool = False, max_attempts: int | None = None, mode: str = "run") -> None:
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
        self.inline = inline
        self.max_attempts = max_attempts
        """Claim at most this many attempts, then finish them and stop (``worker --max-trials``)."""
        self.log = log
        self.since = datetime.now()
        """Failed attempts finished since then (by anyone) count against ``max_retries``."""
        self.report = StudyReport(study.study_name, "", len(self.cells), workers=0 if inline else workers,
                                  inline=inline, mode=mode)
        self.jobs: dict[int, _Job] = {}
        self.next_job = 0
        self.claims = 0
        self.errors: collections.Counter[tuple[str, int]] = collections.Counter()
        self.deaths: collections.Counter[tuple[str, int]] = collections.Counter()
        self.last_error: dict[tuple[str, int], str] = {}
        self.complete: set[tuple[str, int]] = set()
        self.elsewhere: set[tuple[str, int]] = set()
        self.todo: collections.deque[Cell] = collections.deque()
        self.gave_up: set[tuple[str, int]] = set()
        self.bar: Any = None

    # -- the loop ----------------------------------------------------------------------------

    def capped(self) -> bool:
        """Return whether this run has claimed all the attempts it may (``max_attempts``)."""
        return self.max_attempts is not None and self.claims >= self.max_attempts

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
            while (self.todo or self.elsewhere) and not self.capped() or self.jobs:
                if self.todo and pool is None and not self.capped():
                    pool = self.start_pool()
                if pool is not None:
                    self.feed(pool)
                    events = pool.wait(timeout=1.0)
                    for event in events:
                        if event.kind in ("epoch", "fatal"):
                            self.handle(event)
                    self.feed(pool)  # freed workers start their next cell before the owner records results
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
            if not isinstance(exc, StorageError):  # with the storage gone, the next run finds them stale
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
            ident = trial_ident(trial)
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
        if self.inline:
            try:
                return InlinePool(self.trial_fn)
            except (ImportError, AttributeError, ValueError) as exc:
                raise WorkerError(f"cannot load the trial function {self.trial_fn!r}: "
                                  f"{type(exc).__name__}: {exc}") from None
        return WorkerPool(min(self.workers, len(self.todo)), self.trial_fn, max(1, cpu_cores() // self.workers))

    def feed(self, pool: WorkerPool | InlinePool) -> None:
        """Give every idle worker the next cell that no other attempt holds."""
        for worker in pool.idle():
            while self.todo and not self.capped():
                if self.dispatch(pool, worker):
                    break

    def dispatch(self, pool: WorkerPool | InlinePool, worker: Any) -> bool:
        """Claim the first free cell of the queue and send it to ``worker``; return whether one was sent.

        Cells found complete, running elsewhere or out of retries leave the queue. Without
        the study lock (SQLite, journal file) two runs may claim one cell at the same
        moment: trial numbers are assigned by the storage in one order for everyone, so
        after claiming, each re-reads the cell: the attempt with the lower number runs,
        the other withdraws.
        """
        claimed = claim_next(
            self.storage, self.study_id, list(self.todo), prepare=self.prepare, distributions=self.distributions,
            owner=Owner.here(worker.pid), grace_period=self.grace_period,
            exclude={job.trial_id for job in self.jobs.values()}, since=self.since, max_failures=self.max_retries,
        )
        self.note(claimed)
        cell, trial_id = claimed.cell, claimed.trial_id
        if cell is None or trial_id is None:
            return False
        self.todo.remove(cell)
        if not claimed.exclusive:
            number = self.storage.get_trial(trial_id).number
            holder = self.held_elsewhere(cell, below=number)
            if holder is not None:
                mark_stale(self.storage, trial_id, f"withdrawn: the cell is {holder} in another run's attempt")
                return False
        self.claims += 1
        job_id = self.next_job
        self.next_job += 1
        self.jobs[job_id] = _Job(cell, trial_id, worker.pid, claimed.config)
        pool.submit(worker, job_id, claimed.config)
        return True

    def prepare(self, cell: Cell) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the TrialConfig dict and search params of a new attempt at ``cell``."""
        search = self.sample_search(cell) if self.spec.search else {}
        return cell.config(self.spec, search).to_dict(), search

    def note(self, claimed: Claimed) -> None:
        """Take in what a claim saw: cells complete, running elsewhere, out of retries; stale attempts."""
        self.report.stale += claimed.stale
        for ident in claimed.complete - self.complete:
            self.complete.add(ident)
            self.bar.update(1)
        for ident, (count, error) in claimed.failures.items():
            if count > self.errors[ident]:  # failures by other workers (ours are counted as they happen)
                self.errors[ident] = count
                self.last_error[ident] = error
        for ident in claimed.exhausted - self.gave_up:
            self.gave_up.add(ident)
            self.last_error[ident] = claimed.failures[ident][1]
            self.log.write(f"\n{_label(self.cells, ident)}: failed after {self.errors[ident]} attempts "
                           f"(some by other workers): {self.last_error[ident]}\n")
        # Cells waited for that no live attempt holds any more (their owner died, or failed): ours to take.
        released = self.elsewhere - claimed.running - claimed.complete
        self.elsewhere = (self.elsewhere & claimed.running) | {c.ident for c in self.todo
                                                               if c.ident in claimed.running}
        drop = claimed.complete | claimed.running | claimed.exhausted
        if any(c.ident in drop for c in self.todo):
            self.todo = collections.deque(c for c in self.todo if c.ident not in drop)
        self.todo.extend(c for c in self.cells if c.ident in released and c.ident not in self.gave_up)

    def held_elsewhere(self, cell: Cell, below: int | None = None) -> str | None:
        """Return "complete" or "running" when another attempt has ``cell``, else None; re-reads the study.

        "running" means a live attempt of another run (numbered below ``below``, when
        given); stale ones found on the way are marked so.
        """
        import socket

        from optuna.trial import TrialState

        host, now = socket.gethostname(), time.time()
        mine = {job.trial_id for job in self.jobs.values()}
        holder = None
        for trial in self.storage.get_all_trials(self.study_id, deepcopy=False,
                                                 states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if trial_ident(trial) != cell.ident or trial._trial_id in mine:
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

    def handle(self, event: Any) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        if event.kind == "fatal":
            raise WorkerError(str(event.payload[0]))
        job = self.jobs.get(event.job) if event.job is not None else None
        if job is None:
            return
        if event.kind == "epoch":
            epoch, score = event.payload
            if finite(score) is not None:
                job.epochs[epoch] = score
                with contextlib.suppress(UpdateFinishedTrialError):  # marked stale elsewhere: kept in job.epochs
                    self.storage.set_trial_intermediate_value(job.trial_id, epoch, score)
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
        """Record a finished attempt: COMPLETE, FAIL (bad metric, or a duplicate), or a late COMPLETE copy."""
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
        try:
            write_result(self.storage, job.trial_id, attrs, epochs)  # outside the lock: every write is idempotent
            late = False
        except UpdateFinishedTrialError:
            late = True  # another process marked this attempt stale while it ran
        with contextlib.suppress(LockLost), study_lock(self.storage, self.study_id):
            # The check and the tell hold the study lock (PostgreSQL), so no two attempts of a cell both complete.
            duplicate = self.completed_by(job.cell)
            if duplicate is not None:
                fail(self.storage, job.trial_id, f"duplicate: cell already COMPLETE in trial {duplicate}", attrs)
            else:
                if late or not tell_complete(self.storage, job.trial_id, value):
                    self.record_late(job, value, attrs)  # keep the result as a new trial
                self.report.completed_now += 1
        if job.cell.ident not in self.complete:
            self.complete.add(job.cell.ident)
            self.bar.update(1)

    def completed_by(self, cell: Cell) -> int | None:
        """Return the number of a COMPLETE trial of ``cell`` in storage (read afresh), or None."""
        from optuna.trial import TrialState

        if batched(self.storage):
            return complete_attempt(self.storage, self.study_id, cell.key, cell.slot)
        for trial in self.storage.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial_ident(trial) == cell.ident:
                return trial.number
        return None

    def record_late(self, job: _Job, value: float, attrs: Mapping[str, Any]) -> None:
        import uuid

        from optuna.trial import TrialState, create_trial

        old = self.storage.get_trial(job.trial_id)
        trial = create_trial(
            state=TrialState.COMPLETE, value=value, params=old.params, distributions=old.distributions,
            user_attrs={**old.user_attrs, **attrs, "late": True, "stale": False, "error": None,
                        ATTEMPT_ATTR: uuid.uuid4().hex},
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


def _label(cells: list[Cell], ident: tuple[str, int]) -> str:
    return next((c.label() for c in cells if c.ident == ident), str(ident))
