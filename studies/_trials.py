"""Attempt records: claiming a cell as a RUNNING trial, heartbeats, results, failures, staleness.

Every attempt at a cell is one Optuna trial. Its user attrs name the owner
(``owner_host``, ``owner_pid``: the process that writes the storage, and
``worker_pid``: the process that runs the trial) and a ``heartbeat`` timestamp
the owner refreshes. An attempt left RUNNING by a killed run is *stale*: at
once when its owner is on this host and one of its processes is gone, otherwise
when its heartbeat is older than the grace period. Stale attempts are marked
FAIL with ``stale: true`` and do not count as failures of the cell.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cells import Cell

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "Owner",
    "claim",
    "complete",
    "fail",
    "heartbeat",
    "mark_stale",
    "pid_alive",
    "reap_stale",
    "stale_reason",
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

    Params, distributions and the owner go in together, so a trial never exists
    without its cell. This is the one place that claims a cell; a storage-level
    atomic claim (enqueue_trial + ask on PostgreSQL) can replace it for multi-host workers.
    """
    from optuna.trial import TrialState, create_trial

    params = {**cell.params(), **(search_params or {})}
    template = create_trial(
        state=TrialState.RUNNING,
        params=params,
        distributions={name: distributions[name] for name in params},
        user_attrs={"cell": cell.key, "slot": cell.slot, "config": _plain(config), **owner.attrs(),
                    "heartbeat": time.time()},
    )
    return storage.create_new_trial(study_id, template_trial=template)


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


def complete(storage: BaseStorage, trial_id: int, value: float, attrs: Mapping[str, Any],
             epochs: Mapping[int, float]) -> None:
    """Write an attempt's intermediate values and user attrs, then mark it COMPLETE with ``value``.

    Raises optuna's UpdateFinishedTrialError when the trial was finished meanwhile (marked stale).
    """
    from optuna.trial import TrialState

    for step, score in sorted(epochs.items()):
        storage.set_trial_intermediate_value(trial_id, step, score)
    for key, item in attrs.items():
        storage.set_trial_user_attr(trial_id, key, item)
    storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [value])


def fail(storage: BaseStorage, trial_id: int, error: str, attrs: Mapping[str, Any] | None = None) -> bool:
    """Mark an attempt FAIL with its ``error``; return False when it had already finished."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        for key, item in {**(attrs or {}), "error": error}.items():
            storage.set_trial_user_attr(trial_id, key, _plain(item))
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
