"""Attempt records: a cell's RUNNING trial, heartbeats, results, failures, staleness.

Every attempt at a cell is one Optuna trial. Its user attrs name the owner
(``owner_host``, ``owner_pid``: the process that writes the storage, and
``worker_pid``: the process that runs the trial) and a ``heartbeat`` timestamp
the owner refreshes. An attempt left RUNNING by a killed run is *stale*: at
once when its owner is on this host and one of its processes is gone, otherwise
when its heartbeat is older than the grace period. Stale attempts are marked
FAIL with ``stale: true`` and do not count as failures of the cell.

Claiming a free cell is ``_claims.claim_next``; reading states is ``_state``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contract import (ATTEMPT, CELL, CONFIG, DETAILS, ERROR, HEARTBEAT, OWNER_HOST, OWNER_PID,
                              RESULT_ATTRS, SECONDS, SECONDS_BY_STAGE, SLOT, STALE, TEST_METRICS, WORKER_PID)

from ..spec import Cell
from ..storage._rdb_direct import create_running_trial, write_trial

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = ["DEFAULT_GRACE_PERIOD", "Owner", "claim", "fail", "finite", "heartbeat", "mark_stale", "pid_alive",
           "result_attrs", "stale_reason", "tell_complete", "write_result"]

DEFAULT_GRACE_PERIOD = 600.0
"""Seconds without a heartbeat after which another host's RUNNING attempt is stale."""



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
        """Return the owner's trial user attrs."""
        return {OWNER_HOST: self.host, OWNER_PID: self.pid, WORKER_PID: self.worker_pid}


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
    attrs = {CELL: cell.key, SLOT: cell.slot, CONFIG: _plain(config), **owner.attrs(),
             HEARTBEAT: time.time(), ATTEMPT: uuid.uuid4().hex}
    trial_id = create_running_trial(storage, study_id, params, dists, attrs)
    if trial_id is not None:
        return trial_id
    template = create_trial(state=TrialState.RUNNING, params=params, distributions=dists, user_attrs=attrs)
    return storage.create_new_trial(study_id, template_trial=template)


def heartbeat(storage: BaseStorage, trial_id: int) -> bool:
    """Refresh an attempt's heartbeat; return False when the trial has already finished (marked stale)."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
    except UpdateFinishedTrialError:
        return False
    return True


def result_attrs(result: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Return the user attrs of a finished attempt from a TrialResult dict (or a ``trial_fn``'s dict).

    Result fields of the contract are copied as they are; a ``test_metrics`` mapping and any
    other top-level number a trial function returns (``macro_f1``, ...) go to
    ``details.test_metrics``, where the report finds a study's secondary metrics.
    """
    attrs = {key: _plain(result[key]) for key in RESULT_ATTRS if key in result}
    known = {*RESULT_ATTRS, SECONDS, CONFIG, TEST_METRICS}
    extra = {key: float(value) for key, value in result.items()
             if key not in known and isinstance(key, str) and isinstance(value, (int, float))
             and not isinstance(value, bool) and math.isfinite(value)}
    given = result.get(TEST_METRICS)
    if isinstance(given, Mapping):
        extra = {**{str(k): float(v) for k, v in given.items() if finite(v) is not None}, **extra}
    if extra:
        details = attrs.get(DETAILS) if isinstance(attrs.get(DETAILS), Mapping) else {}
        metrics = details.get(TEST_METRICS) if isinstance(details.get(TEST_METRICS), Mapping) else {}
        attrs[DETAILS] = {**details, TEST_METRICS: {**metrics, **extra}}
    stages = result.get(SECONDS)
    if isinstance(stages, Mapping):
        attrs[SECONDS_BY_STAGE] = _plain(stages)
        attrs[SECONDS] = float(stages.get("total", seconds))
    else:
        attrs[SECONDS] = float(stages) if isinstance(stages, (int, float)) else seconds
    if CONFIG in result:
        attrs[CONFIG] = _plain(result[CONFIG])
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
        write_result(storage, trial_id, {key: _plain(item) for key, item in {**(attrs or {}), ERROR: error}.items()},
                     {})
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        return False
    return True


def mark_stale(storage: BaseStorage, trial_id: int, reason: str) -> bool:
    """Mark a RUNNING attempt FAIL with ``stale: true``; return False when it had finished meanwhile."""
    return fail(storage, trial_id, f"stale: {reason}", {STALE: True})


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
    if attrs.get(OWNER_HOST) == host:
        for key in (OWNER_PID, WORKER_PID):
            pid = attrs.get(key)
            if isinstance(pid, int) and not pid_alive(pid):
                return f"{key.replace('_', ' ')} {pid} on {host} is gone"
    beat = attrs.get(HEARTBEAT)
    if not isinstance(beat, (int, float)):
        beat = trial.datetime_start.timestamp() if trial.datetime_start else now
    if now - beat > grace_period:
        return f"no heartbeat for {now - beat:.0f} s (grace period {grace_period:.0f} s)"
    return None


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
