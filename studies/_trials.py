"""Attempt records: claiming a cell as a RUNNING trial, heartbeats, results, failures, staleness.

Every attempt at a cell is one Optuna trial. Its user attrs name the owner
(``owner_host``, ``owner_pid``: the process that writes the storage, and
``worker_pid``: the process that runs the trial) and a ``heartbeat`` timestamp
the owner refreshes. An attempt left RUNNING by a killed run is *stale*: at
once when its owner is on this host and one of its processes is gone, otherwise
when its heartbeat is older than the grace period. Stale attempts are marked
FAIL with ``stale: true`` and do not count as failures of the cell.

``claim_next`` is the one place that claims a cell. Under the study lock (a
PostgreSQL advisory lock; see ``_database.study_lock``) it reads the study once,
marks stale attempts, and creates the RUNNING trial of the first free cell, so
any number of processes on any number of hosts never claim one cell twice.
Storages without such a lock (SQLite, journal file) rely on a check after the
claim instead: of two attempts claimed at once, the lower-numbered one runs.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cells import Cell
from ._database import ATTEMPT_ATTR, StorageError
from ._rdb_direct import LockLost, create_running_trial, study_lock, write_trial

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "Claimed",
    "Owner",
    "claim",
    "claim_next",
    "fail",
    "heartbeat",
    "mark_stale",
    "pid_alive",
    "reap_stale",
    "stale_reason",
    "tell_complete",
    "trial_ident",
    "write_result",
]

DEFAULT_GRACE_PERIOD = 600.0
"""Seconds without a heartbeat after which another host's RUNNING attempt is stale."""

RESULT_ATTRS = ("otdd_before", "otdd_after", "otdd_curve", "val_score", "test_score", "metric", "direction",
                "modality", "peak_mem_mb", "versions", "best_epoch", "trainable_params", "device", "details")
"""TrialResult fields copied to user attrs as they are (``seconds`` and ``config`` get special treatment)."""


@dataclass(frozen=True)
class Owner:
    """Who runs an attempt: the host, the storage-writing process and the trial's process."""

    host: str
    pid: int
    worker_pid: int | None = None

    @classmethod
    def here(cls, worker_pid: int | None = None) -> Owner:
        """Return this process on this host as the owner."""
        return cls(socket.gethostname(), os.getpid(), worker_pid)

    def attrs(self) -> dict[str, Any]:
        return {"host": self.host, "owner_host": self.host, "owner_pid": self.pid, "worker_pid": self.worker_pid}


def claim(storage: BaseStorage, study_id: int, cell: Cell, *, config: Mapping[str, Any],
          distributions: Mapping[str, BaseDistribution], owner: Owner,
          search_params: Mapping[str, Any] | None = None) -> int:
    """Create the RUNNING trial of one attempt at ``cell`` in one storage write; return its trial id.

    Params, distributions, the owner and a unique ``attempt`` token go in together,
    so a trial never exists without its cell, and a create interrupted by a dropped
    connection is found by its token rather than made twice. It checks nothing:
    :func:`claim_next` calls it once it knows the cell is free.
    """
    from optuna.trial import TrialState, create_trial

    params = {**cell.params(), **(search_params or {})}
    dists = {name: distributions[name] for name in params}
    attrs = {"cell": cell.key, "slot": cell.slot, "config": _plain(config), **owner.attrs(),
             "heartbeat": time.time(), ATTEMPT_ATTR: uuid.uuid4().hex}
    trial_id = create_running_trial(storage, study_id, params, dists, attrs)
    if trial_id is not None:
        return trial_id
    template = create_trial(state=TrialState.RUNNING, params=params, distributions=dists, user_attrs=attrs)
    return storage.create_new_trial(study_id, template_trial=template)


Ident = tuple[str, int]
"""A cell's identity: its canonical key and search slot."""


@dataclass
class Claimed:
    """What :func:`claim_next` claimed (``cell`` is None when every candidate was taken), and what it saw."""

    cell: Cell | None = None
    trial_id: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """The claimed attempt's TrialConfig dict."""
    exclusive: bool = False
    """The claim was made under a lock that every other claimer takes too: no check after it is needed."""
    complete: set[Ident] = field(default_factory=set)
    """Cells with a COMPLETE attempt."""
    running: set[Ident] = field(default_factory=set)
    """Cells with a live RUNNING attempt of another owner."""
    failures: dict[Ident, tuple[int, str]] = field(default_factory=dict)
    """Cells' failed (not stale) attempts finished since ``since``: count and last error."""
    exhausted: set[Ident] = field(default_factory=set)
    """Candidates skipped because their failures since ``since`` used up ``max_failures``."""
    stale: list[int] = field(default_factory=list)
    """Numbers of stale attempts marked FAIL on the way."""


LOCK_LOST_TRIES = 5


def claim_next(storage: BaseStorage, study_id: int, cells: Sequence[Cell], *,
               prepare: Callable[[Cell], tuple[Mapping[str, Any], Mapping[str, Any]]],
               distributions: Mapping[str, BaseDistribution], owner: Owner, grace_period: float,
               exclude: Iterable[int] = (), since: datetime | None = None,
               max_failures: int | None = None) -> Claimed:
    """Claim the first of ``cells`` that is free; return the claim and the states seen on the way.

    A cell is free when it has no COMPLETE attempt, no live RUNNING attempt (stale
    ones are marked FAIL here; ``exclude`` holds trial ids of the caller's own running
    attempts) and, with ``max_failures``, at most that many failed attempts finished
    since ``since``. ``prepare(cell)`` returns its (TrialConfig dict, search params);
    it runs under the lock, so it may read the study (the search sampler does).
    """
    for _ in range(LOCK_LOST_TRIES):
        found = Claimed()
        try:
            with study_lock(storage, study_id) as exclusive:
                found = _look(storage, study_id, cells, grace_period=grace_period, exclude=set(exclude),
                              since=since, max_failures=max_failures)
                found.exclusive = exclusive
                if found.cell is not None:
                    config, search = prepare(found.cell)
                    found.config = dict(config)
                    found.trial_id = claim(storage, study_id, found.cell, config=config,
                                           distributions=distributions, owner=owner, search_params=search)
            return found
        except LockLost:
            if found.trial_id is not None:  # claimed without the lock's protection: give it back
                mark_stale(storage, found.trial_id, "withdrawn: the connection holding the study lock dropped "
                                                    "while claiming; the cell is claimed again")
    raise StorageError(f"claiming a cell: the connection holding the study lock dropped {LOCK_LOST_TRIES} times "
                       "in a row; is the database server restarting?")


def _look(storage: BaseStorage, study_id: int, cells: Sequence[Cell], *, grace_period: float, exclude: set[int],
          since: datetime | None, max_failures: int | None) -> Claimed:
    """Read the study once: which cells are complete, running, failed since ``since``; the first free one."""
    from optuna.trial import TrialState

    found = Claimed()
    host, now = socket.gethostname(), time.time()
    for trial in storage.get_all_trials(study_id, deepcopy=False,
                                        states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL)):
        ident = trial_ident(trial)
        if ident is None:
            continue
        if trial.state == TrialState.COMPLETE:
            found.complete.add(ident)
        elif trial.state == TrialState.RUNNING and trial._trial_id not in exclude:
            reason = stale_reason(trial, host=host, now=now, grace_period=grace_period)
            if reason is None:
                found.running.add(ident)
            elif mark_stale(storage, trial._trial_id, reason):
                found.stale.append(trial.number)
        elif (trial.state == TrialState.FAIL and since is not None and not trial.user_attrs.get("stale")
              and trial.datetime_complete is not None and trial.datetime_complete >= since):
            count, _ = found.failures.get(ident, (0, ""))
            found.failures[ident] = (count + 1, str(trial.user_attrs.get("error", "failed")))
    found.running -= found.complete
    for cell in cells:
        if cell.ident in found.complete or cell.ident in found.running:
            continue
        if max_failures is not None and found.failures.get(cell.ident, (0, ""))[0] > max_failures:
            found.exhausted.add(cell.ident)
            continue
        found.cell = cell
        break
    return found


def trial_ident(trial: FrozenTrial) -> Ident | None:
    """Return the (cell key, slot) of an attempt, or None for a trial orca-ablate did not create."""
    key = trial.user_attrs.get("cell")
    if not isinstance(key, str):
        return None
    slot = trial.user_attrs.get("slot", 0)
    return key, slot if isinstance(slot, int) else 0


def heartbeat(storage: BaseStorage, trial_id: int) -> bool:
    """Refresh an attempt's heartbeat; return False when the trial has already finished (marked stale)."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        storage.set_trial_user_attr(trial_id, "heartbeat", time.time())
    except UpdateFinishedTrialError:
        return False
    return True


def result_attrs(result: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Return the user attrs of a finished attempt from a TrialResult dict."""
    attrs = {key: _plain(result[key]) for key in RESULT_ATTRS if key in result}
    stages = result.get("seconds")
    if isinstance(stages, Mapping):
        attrs["seconds_by_stage"] = _plain(stages)
        attrs["seconds"] = float(stages.get("total", seconds))
    else:
        attrs["seconds"] = float(stages) if isinstance(stages, (int, float)) else seconds
    if "config" in result:
        attrs["config"] = _plain(result["config"])
    return attrs


def write_result(storage: BaseStorage, trial_id: int, attrs: Mapping[str, Any], epochs: Mapping[int, float]) -> None:
    """Write a finished attempt's intermediate values and user attrs while it is still RUNNING.

    Every write is idempotent, so a write retried after a dropped connection does no
    harm. Raises optuna's UpdateFinishedTrialError when the trial was finished
    meanwhile (marked stale by another process).
    """
    if write_trial(storage, trial_id, attrs, epochs):
        return
    for step, score in sorted(epochs.items()):
        storage.set_trial_intermediate_value(trial_id, step, score)
    for key, item in attrs.items():
        storage.set_trial_user_attr(trial_id, key, item)


def tell_complete(storage: BaseStorage, trial_id: int, value: float) -> bool:
    """Mark an attempt COMPLETE with ``value``; return False when it had been finished meanwhile (stale)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])
    except UpdateFinishedTrialError:
        return False
    return True


def fail(storage: BaseStorage, trial_id: int, error: str, attrs: Mapping[str, Any] | None = None) -> bool:
    """Mark an attempt FAIL with its ``error``; return False when it had already finished."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        write_result(storage, trial_id, {key: _plain(item) for key, item in {**(attrs or {}), "error": error}.items()},
                     {})
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


def mark_stale(storage: BaseStorage, trial_id: int, reason: str) -> bool:
    """Mark a RUNNING attempt FAIL with ``stale: true``; return False when it had finished meanwhile."""
    return fail(storage, trial_id, f"stale: {reason}", {"stale": True})


def pid_alive(pid: int) -> bool:
    """Return whether process ``pid`` exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    stat = Path(f"/proc/{pid}/stat")
    try:
        # The state letter follows the parenthesised command name, which may hold spaces.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stale_reason(trial: FrozenTrial, *, host: str, now: float, grace_period: float) -> str | None:
    """Return why a RUNNING attempt is stale, or None while its owner may still finish it."""
    attrs = trial.user_attrs
    if attrs.get("owner_host") == host:
        for key in ("owner_pid", "worker_pid"):
            pid = attrs.get(key)
            if isinstance(pid, int) and not pid_alive(pid):
                return f"{key.replace('_', ' ')} {pid} on {host} is gone"
    beat = attrs.get("heartbeat")
    if not isinstance(beat, (int, float)):
        beat = trial.datetime_start.timestamp() if trial.datetime_start else now
    if now - beat > grace_period:
        return f"no heartbeat for {now - beat:.0f} s (grace period {grace_period:.0f} s)"
    return None


def reap_stale(storage: BaseStorage, study_id: int, trials: Iterable[FrozenTrial], *,
               grace_period: float, exclude: Iterable[int] = ()) -> list[int]:
    """Mark every stale RUNNING attempt among ``trials`` FAIL; return their trial numbers.

    ``exclude`` holds trial ids this process owns and keeps alive.
    """
    from optuna.trial import TrialState

    host, now, skip = socket.gethostname(), time.time(), set(exclude)
    reaped = []
    for trial in trials:
        if trial.state != TrialState.RUNNING or trial._trial_id in skip:
            continue
        reason = stale_reason(trial, host=host, now=now, grace_period=grace_period)
        if reason and mark_stale(storage, trial._trial_id, reason):
            reaped.append(trial.number)
    return reaped


def _plain(value: Any) -> Any:
    """Return ``value`` as plain JSON types (numpy scalars -> numbers, tuples -> lists)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def finite(value: Any) -> float | None:
    """Return ``value`` as a float when it is a finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
