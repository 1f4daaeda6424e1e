"""The run loop: run every cell of a spec to COMPLETE exactly once, resumably.

One process owns the storage connection; K local worker processes run trial
functions and send results back (``_workers``). The owner claims a cell by
creating its RUNNING trial (``_claims.claim_next``), refreshes the attempt's
heartbeat while it runs, reports each fine-tuning epoch as an intermediate
value, and finally writes the result. Before telling COMPLETE it checks that no
other attempt of the cell is COMPLETE already (a duplicate is told FAIL with
error ``duplicate``), so a cell ends COMPLETE exactly once even when several
runs or workers share one study. On PostgreSQL the claim and that check hold the
study lock, so they are atomic across hosts.

The runner's picture of the study is the last read of it (a :class:`StudyScan`,
from a claim or a poll) plus what it did since: its running jobs, the cells it
completed, and its per-cell failure tally. Which cells are to do, complete or
running elsewhere is derived from those, never kept in step by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from harness.contract import (ATTEMPT, CELL, CONFIG, DIRECTION, ERROR, LATE, METRIC, SECONDS, STALE, TRACEBACK,
                              VAL_CURVE)
from harness.errors import OrcaAblateError

from ..spec import SAMPLERS, Cell, StudySpec, param_distributions
from ..storage import StorageError
from ..storage._locks import study_lock
from ..storage._rdb_direct import LockLost, batched, complete_attempt
from ._adaptive import study_cells
from ._attempts import Owner, fail, finite, heartbeat, mark_stale, result_attrs, tell_complete, write_result
from ._claims import Claimed, claim_next, withdraw_stale
from ._state import Ident, StudyScan, scan_study
from ._gpus import assign_gpus, visible_gpus
from ._workers import InlinePool, TrialFn, WorkerPool, checkpoint_dir_for, cpu_cores

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["HEARTBEAT_INTERVAL_S", "RunOutcome", "Runner", "WorkerError"]

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


@dataclass
class _Tally:
    """This run's record of one cell's failed attempts."""

    errors: int = 0
    """Failed attempts since the run started (this run's, or others' seen in the study)."""
    deaths: int = 0
    """Attempts whose worker process died in this run."""
    last_error: str = ""
    gave_up: bool = False


@dataclass
class RunOutcome:
    """What one run loop did (the caller turns it into a StudyReport); ``+`` adds two rounds' outcomes."""

    ran: int = 0
    """Attempts this run finished (COMPLETE or FAIL)."""
    completed_now: int = 0
    stale: list[int] = field(default_factory=list)
    """Trial numbers of stale attempts this run marked FAIL."""
    failed: list[tuple[Cell, str, int]] = field(default_factory=list)
    """(cell, last error, attempts) of cells this run gave up on."""
    seconds: float = 0.0

    def __add__(self, other: RunOutcome) -> RunOutcome:
        return RunOutcome(self.ran + other.ran, self.completed_now + other.completed_now, self.stale + other.stale,
                          self.failed + other.failed, self.seconds + other.seconds)


class Runner:
    """The storage owner's loop: claim cells, feed workers, record what they report."""

    def __init__(self, storage: BaseStorage, study: optuna.Study, spec: StudySpec, *, workers: int,
                 max_retries: int, trial_fn: str | TrialFn, grace_period: float, heartbeat_interval: float,
                 log: TextIO, inline: bool = False, max_attempts: int | None = None,
                 workers_per_gpu: int = 1) -> None:
        self.storage = storage
        self.study = study
        self.study_id = study._study_id
        self.spec = spec
        self.cells = study_cells(spec, study)
        self.distributions = param_distributions(spec)
        self.max_retries = max_retries
        self.trial_fn = trial_fn
        self.grace_period = grace_period
        self.heartbeat_interval = heartbeat_interval
        self.workers = workers
        self.workers_per_gpu = workers_per_gpu
        self.inline = inline
        self.max_attempts = max_attempts
        """Claim at most this many attempts, then finish them and stop (``worker --max-trials``)."""
        self.log = log
        self.since = datetime.now()
        """Failed attempts finished since then (by anyone) count against ``max_retries``."""
        self.outcome = RunOutcome()
        self.seen = StudyScan()
        """The last read of the study."""
        self.jobs: dict[int, _Job] = {}
        self.done: set[Ident] = set()
        """Cells this run completed (the next read of the study shows them too)."""
        self.tally: dict[Ident, _Tally] = {c.ident: _Tally() for c in self.cells}
        self.claims = 0
        self.next_job = 0

    # -- the picture of the study, derived ---------------------------------------------------

    def mine(self) -> set[int]:
        """Return the trial ids of this run's running attempts."""
        return {job.trial_id for job in self.jobs.values()}

    def complete(self) -> frozenset[Ident]:
        """Return the cells with a COMPLETE attempt."""
        return self.seen.complete() | self.done

    def elsewhere(self) -> set[Ident]:
        """Return the cells not complete that a live attempt of another run holds."""
        here = {job.cell.ident for job in self.jobs.values()}
        return self.seen.running(exclude=self.mine()) - self.complete() - here

    def todo(self) -> list[Cell]:
        """Return the cells to claim: first those without failures in this run, each group in grid order."""
        skip = self.complete() | self.elsewhere() | {job.cell.ident for job in self.jobs.values()}
        cells = [c for c in self.cells if c.ident not in skip and not self.tally[c.ident].gave_up]
        return sorted(cells, key=lambda c: self.tally[c.ident].errors + self.tally[c.ident].deaths > 0)

    def capped(self) -> bool:
        """Return whether this run has claimed all the attempts it may (``max_attempts``)."""
        return self.max_attempts is not None and self.claims >= self.max_attempts

    def pending(self) -> bool:
        """Return whether the loop goes on: jobs running, or cells to claim or to wait for."""
        return bool(self.jobs) or not self.capped() and bool(self.todo() or self.elsewhere())

    # -- the loop ----------------------------------------------------------------------------

    def run(self, *, progress: bool) -> RunOutcome:
        """Run until every cell is complete, given up or capped; return what this run did."""
        from tqdm import tqdm

        start = time.perf_counter()
        self.seen = scan_study(self.storage, self.study_id, grace_period=self.grace_period)
        bar = tqdm(total=len(self.cells), initial=len(self.complete()), unit=CELL, file=self.log,
                   desc=self.study.study_name, disable=not progress, dynamic_ncols=True)
        pool: WorkerPool | InlinePool | None = None
        last_beat = last_poll = time.monotonic()
        try:
            while self.pending():
                if pool is None and not self.capped() and self.todo():
                    pool = self.start_pool()
                if pool is not None:
                    self.step(pool)
                else:
                    time.sleep(1.0)
                now = time.monotonic()
                if self.jobs and now - last_beat >= self.heartbeat_interval:
                    for job in self.jobs.values():
                        heartbeat(self.storage, job.trial_id)
                    last_beat = now
                if self.elsewhere() and not self.todo() and now - last_poll >= POLL_INTERVAL_S:
                    self.poll()
                    last_poll = now
                self.show(bar)
        except BaseException as exc:
            if not isinstance(exc, StorageError):  # with the storage gone, the next run finds them stale
                reason = f"the run was stopped ({type(exc).__name__})"
                for job in self.jobs.values():
                    with contextlib.suppress(Exception):  # the next run finds it stale anyway; keep the first error
                        mark_stale(self.storage, job.trial_id, reason)
            if pool is not None:
                pool.close(kill=True)
            bar.close()
            raise
        if pool is not None:
            pool.close()
        self.show(bar)
        bar.close()
        self.outcome.failed = [(c, self.tally[c.ident].last_error or "not run",
                                self.tally[c.ident].errors + self.tally[c.ident].deaths)
                               for c in self.cells if self.tally[c.ident].gave_up]
        self.outcome.seconds = time.perf_counter() - start
        return self.outcome

    def step(self, pool: WorkerPool | InlinePool) -> None:
        """Feed idle workers, wait up to a second for their events, and record them."""
        self.feed(pool)
        events = pool.wait(timeout=1.0)
        for event in events:
            if event.kind in ("epoch", "fatal"):
                self.handle(event)
        self.feed(pool)  # freed workers start their next cell before the owner records results
        for event in events:
            if event.kind not in ("epoch", "fatal"):
                self.handle(event)

    def show(self, bar: Any) -> None:
        """Bring the progress bar up to date: the one place it changes."""
        done = self.complete()
        bar.n = sum(c.ident in done for c in self.cells)
        bar.set_postfix(running=len(self.jobs), failed=sum(t.gave_up for t in self.tally.values()), refresh=False)
        bar.refresh()

    def poll(self) -> None:
        """Re-read the study while waiting for other runs' attempts; withdraw stale ones (their cells are free)."""
        self.seen = scan_study(self.storage, self.study_id, grace_period=self.grace_period, mine=self.mine())
        self.outcome.stale += withdraw_stale(self.storage, self.seen)
        if self.seen.orphaned():
            self.seen = scan_study(self.storage, self.study_id, grace_period=self.grace_period, mine=self.mine())

    # -- one attempt -------------------------------------------------------------------------

    def start_pool(self) -> WorkerPool | InlinePool:
        """Return the worker processes (K of them, at most one per cell to do), or the inline runner."""
        if self.inline:
            try:
                return InlinePool(self.trial_fn, plain=self.spec.free)
            except (ImportError, AttributeError, ValueError) as exc:
                raise WorkerError(f"cannot load the trial function {self.trial_fn!r}: "
                                  f"{type(exc).__name__}: {exc}") from None
        size = min(self.workers, len(self.todo()))
        gpus = assign_gpus(size, visible_gpus(), self.workers_per_gpu)
        return WorkerPool(size, self.trial_fn, max(1, cpu_cores() // self.workers), gpus, plain=self.spec.free)

    def feed(self, pool: WorkerPool | InlinePool) -> None:
        """Give every idle worker the next cell that no other attempt holds."""
        for worker in pool.idle():
            while not self.capped() and self.todo():
                if self.dispatch(pool, worker):
                    break

    def dispatch(self, pool: WorkerPool | InlinePool, worker: Any) -> bool:
        """Claim the first free cell to do and send it to ``worker``; return whether one was sent.

        Without the study lock (SQLite) two runs may claim one cell at the same
        moment: trial numbers are assigned by the storage in one order for everyone, so
        after claiming, each re-reads the cell: the attempt with the lower number runs,
        the other withdraws.
        """
        claimed = claim_next(
            self.storage, self.study_id, self.todo(), prepare=self.prepare, distributions=self.distributions,
            owner=Owner.here(worker.pid), grace_period=self.grace_period, exclude=self.mine(), since=self.since,
            max_failures=self.max_retries,
        )
        self.note(claimed)
        cell, trial_id = claimed.cell, claimed.trial_id
        if cell is None or trial_id is None:
            return False
        if not claimed.exclusive:
            holder = self.held_elsewhere(cell, trial_id)
            if holder is not None:
                mark_stale(self.storage, trial_id, f"withdrawn: the cell is {holder} in another run's attempt")
                return False
        self.claims += 1
        job_id = self.next_job
        self.next_job += 1
        self.jobs[job_id] = _Job(cell, trial_id, worker.pid, claimed.config)
        pool.submit(worker, job_id, claimed.config, checkpoint_dir_for(self.study.study_name, cell.key, cell.slot))
        return True

    def prepare(self, cell: Cell) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return the settings (TrialConfig dict, or a flat dict for ``trial_fn:``) and search params of an attempt."""
        search = self.sample_search(cell) if self.spec.search else {}
        return cell.settings(self.spec, search), search

    def note(self, claimed: Claimed) -> None:
        """Take in what a claim saw: the study's attempts, others' failures, cells out of retries."""
        self.seen = claimed.scan
        self.outcome.stale += claimed.stale
        for ident, (count, error) in claimed.scan.failures(self.since).items():
            tally = self.tally.get(ident)
            if tally is not None and count > tally.errors:  # failures by other workers (ours count as they happen)
                tally.errors, tally.last_error = count, error
        for ident in claimed.exhausted:
            tally = self.tally[ident]
            if not tally.gave_up:
                tally.gave_up = True
                self.log.write(f"\n{_label(self.cells, ident)}: failed after {tally.errors} attempts "
                               f"(some by other workers): {tally.last_error}\n")

    def held_elsewhere(self, cell: Cell, trial_id: int) -> str | None:
        """Return "complete" or "running" when another attempt has ``cell``, else None; re-reads the study.

        "running" means a live attempt of another run numbered below the attempt
        ``trial_id`` just claimed; stale ones found on the way are marked so.
        """
        from optuna.trial import TrialState

        number = self.storage.get_trial(trial_id).number
        self.seen = scan_study(self.storage, self.study_id, grace_period=self.grace_period,
                               mine=self.mine() | {trial_id}, states=(TrialState.COMPLETE, TrialState.RUNNING))
        attempts = [a for a in self.seen.of(cell.ident) if a.trial._trial_id != trial_id]
        if any(a.state == "complete" for a in attempts):
            return "complete"
        self.outcome.stale += withdraw_stale(self.storage, StudyScan(tuple(a for a in attempts if a.state == "orphaned")))
        if any(a.state == "running" and a.trial.number < number for a in attempts):
            return "running"
        return None

    def handle(self, event: Any) -> None:
        """Record one worker event: an epoch's score, a result, an error, a dead worker, or a fatal error."""
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
        self.outcome.ran += 1
        if event.kind == "done":
            self.finish(job, event.payload[0], event.payload[1])
        elif event.kind == "error":
            message, trace, seconds = event.payload
            fail(self.storage, job.trial_id, message, {TRACEBACK: trace, SECONDS: seconds})
            self.failed(job.cell, message)
        elif event.kind == "died":
            code = event.payload[0]
            how = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            message = f"worker process {job.worker_pid} died ({how})"
            mark_stale(self.storage, job.trial_id, message)
            self.failed(job.cell, message, died=True)

    def failed(self, cell: Cell, message: str, *, died: bool = False) -> None:
        """Count a failed attempt; give the cell up once it used up its retries in this run."""
        tally = self.tally[cell.ident]
        tally.last_error = message
        if died:
            tally.deaths += 1
            count, allowed = tally.deaths, MAX_WORKER_DEATHS - 1
        else:
            tally.errors += 1
            count, allowed = tally.errors, self.max_retries
        if count > allowed:
            tally.gave_up = True
            self.log.write(f"\n{cell.label()}: failed after {count} attempts: {message}\n")

    def finish(self, job: _Job, result: Mapping[str, Any], seconds: float) -> None:
        """Record a finished attempt: COMPLETE, FAIL (bad metric, or a duplicate), or a late COMPLETE copy."""
        from optuna.exceptions import UpdateFinishedTrialError

        attrs = result_attrs(result, seconds)
        if attrs.get(CONFIG) == job.config:
            del attrs[CONFIG]  # written when the cell was claimed
        value = finite(result.get(self.spec.metric))
        problem = None
        if value is None:
            problem = f"metric {self.spec.metric} is {result.get(self.spec.metric)!r}, not a finite number"
        elif self.spec.search and result.get(DIRECTION) not in (None, self.spec.direction):
            problem = (f"the task's {result.get(METRIC)} is to {result.get(DIRECTION)}, but the spec says "
                       f"direction: {self.spec.direction}; set direction: {result.get(DIRECTION)}")
        if problem:
            fail(self.storage, job.trial_id, problem, attrs)
            self.failed(job.cell, problem)
            return
        assert value is not None
        curve = result.get(VAL_CURVE) or []
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
                self.outcome.completed_now += 1
        self.done.add(job.cell.ident)

    def completed_by(self, cell: Cell) -> int | None:
        """Return the number of a COMPLETE trial of ``cell`` in storage (read afresh), or None."""
        from optuna.trial import TrialState

        if batched(self.storage):
            return complete_attempt(self.storage, self.study_id, cell.key, cell.slot)
        scan = scan_study(self.storage, self.study_id, grace_period=self.grace_period, states=(TrialState.COMPLETE,))
        return scan.first_complete(cell.ident)

    def record_late(self, job: _Job, value: float, attrs: Mapping[str, Any]) -> None:
        """Store the result of an attempt finished after it was marked stale as a new COMPLETE trial."""
        import uuid

        from optuna.trial import TrialState, create_trial

        old = self.storage.get_trial(job.trial_id)
        trial = create_trial(
            state=TrialState.COMPLETE, value=value, params=old.params, distributions=old.distributions,
            user_attrs={**old.user_attrs, **attrs, LATE: True, STALE: False, ERROR: None, ATTEMPT: uuid.uuid4().hex},
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
                   if t.user_attrs.get(CELL) == cell.key]
        module, _, name = SAMPLERS[self.spec.sampler].rpartition(".")
        seed = int(hashlib.sha256(f"{cell.key}#{cell.slot}#{len(history)}".encode()).hexdigest()[:8], 16)
        sampler: Callable[..., Any] = getattr(importlib.import_module(module), name)
        sub = optuna.create_study(direction=self.spec.direction, sampler=sampler(seed=seed))
        for trial in history:
            sub.add_trial(create_trial(params={p: trial.params[p] for p in dims}, distributions=dims,
                                       value=trial.value))
        return dict(sub.ask(dims).params)


def _label(cells: list[Cell], ident: Ident) -> str:
    return next((c.label() for c in cells if c.ident == ident), str(ident))
