"""The one reading of a study's attempts: every trial sorted into a state and grouped by cell.

Each orca-ablate trial is one attempt at a cell (user attrs ``cell`` and
``slot``). :func:`sort_attempts` gives each a state:

- ``complete``: COMPLETE;
- ``running``: RUNNING, and its owner may still finish it;
- ``orphaned``: RUNNING, but its owner is gone (a dead process on this host) or
  silent for longer than the grace period (a *stale* attempt): it should be marked FAIL;
- ``failed``: FAIL with an error: counts against the cell's retries;
- ``withdrawn``: FAIL marked ``stale``: the attempt was given up, not the cell.

Claiming, the run loop, reaping and ``status`` all read the study through
:class:`StudyScan`, so they agree on what each state means.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from harness.contract import CELL, ERROR, SLOT, STALE

from ._attempts import stale_reason

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, TrialState

__all__ = ["ATTEMPT_STATES", "Attempt", "Ident", "StudyScan", "scan_study", "sort_attempts", "trial_ident"]

Ident = tuple[str, int]
"""A cell's identity: its canonical key and search slot."""

ATTEMPT_STATES = ("complete", "running", "orphaned", "failed", "withdrawn")


def trial_ident(trial: FrozenTrial) -> Ident | None:
    """Return the (cell key, slot) of an attempt, or None for a trial orca-ablate did not create."""
    key = trial.user_attrs.get(CELL)
    if not isinstance(key, str):
        return None
    slot = trial.user_attrs.get(SLOT, 0)
    return key, slot if isinstance(slot, int) else 0


@dataclass(frozen=True)
class Attempt:
    """One attempt at a cell and its state (one of :data:`ATTEMPT_STATES`)."""

    trial: FrozenTrial
    ident: Ident
    state: str
    reason: str | None = None
    """Why an ``orphaned`` attempt is stale."""

    @property
    def error(self) -> str:
        """Return the attempt's recorded error (empty when none)."""
        error = self.trial.user_attrs.get(ERROR)
        return "" if error is None else str(error)


@dataclass(frozen=True)
class StudyScan:
    """The attempts of one read of a study, by state and by cell (attempts in trial-number order)."""

    attempts: tuple[Attempt, ...] = ()
    by_cell: dict[Ident, list[Attempt]] = field(default_factory=dict)

    def of(self, ident: Ident) -> list[Attempt]:
        """Return the attempts at one cell, in trial-number order."""
        return self.by_cell.get(ident, [])

    def complete(self) -> frozenset[Ident]:
        """Return the cells with a COMPLETE attempt (computed once per scan: the run loop asks often)."""
        return self._complete

    @functools.cached_property
    def _complete(self) -> frozenset[Ident]:
        return frozenset(a.ident for a in self.attempts if a.state == "complete")

    def running(self, exclude: Container[int] = ()) -> set[Ident]:
        """Return the cells without a COMPLETE attempt that have a live RUNNING one (trial ids in ``exclude`` aside)."""
        done = self.complete()
        return {a.ident for a in self.attempts
                if a.state == "running" and a.trial._trial_id not in exclude and a.ident not in done}

    def orphaned(self) -> list[Attempt]:
        """Return the RUNNING attempts whose owner is gone or silent (stale attempts)."""
        return [a for a in self.attempts if a.state == "orphaned"]

    def failures(self, since: datetime | None) -> dict[Ident, tuple[int, str]]:
        """Return cell -> (failed attempts finished since ``since``, the last one's error); {} without ``since``."""
        out: dict[Ident, tuple[int, str]] = {}
        if since is None:
            return out
        for a in self.attempts:
            finished = a.trial.datetime_complete
            if a.state == "failed" and finished is not None and finished >= since:
                out[a.ident] = (out.get(a.ident, (0, ""))[0] + 1, a.error or "failed")
        return out

    def first_complete(self, ident: Ident) -> int | None:
        """Return the number of the first COMPLETE attempt at ``ident``, or None."""
        return next((a.trial.number for a in self.of(ident) if a.state == "complete"), None)


def sort_attempts(trials: Iterable[FrozenTrial], *, grace_period: float, mine: Container[int] = (),
                  host: str | None = None, now: float | None = None) -> StudyScan:
    """Return the attempts among ``trials`` with their states (trials without a cell are left out).

    ``mine`` holds trial ids the caller runs and keeps alive: they are ``running``
    without a staleness check. ``host`` and ``now`` default to this host and time.
    """
    host = host or socket.gethostname()
    now = time.time() if now is None else now
    attempts: list[Attempt] = []
    for trial in sorted(trials, key=lambda t: t.number):
        ident = trial_ident(trial)
        if ident is None:
            continue
        state, reason = _state(trial, trial.state, mine, host=host, now=now, grace_period=grace_period)
        if state is not None:
            attempts.append(Attempt(trial, ident, state, reason))
    by_cell: dict[Ident, list[Attempt]] = {}
    for attempt in attempts:
        by_cell.setdefault(attempt.ident, []).append(attempt)
    return StudyScan(tuple(attempts), by_cell)


def _state(trial: FrozenTrial, state: TrialState, mine: Container[int], *, host: str, now: float,
           grace_period: float) -> tuple[str | None, str | None]:
    from optuna.trial import TrialState

    if state == TrialState.COMPLETE:
        return "complete", None
    if state == TrialState.RUNNING:
        if trial._trial_id in mine:
            return "running", None
        reason = stale_reason(trial, host=host, now=now, grace_period=grace_period)
        return ("running", None) if reason is None else ("orphaned", reason)
    if state == TrialState.FAIL:
        return ("withdrawn" if trial.user_attrs.get(STALE) else "failed"), None
    return None, None  # WAITING or PRUNED: orca-ablate writes neither


def scan_study(storage: BaseStorage, study_id: int, *, grace_period: float, mine: Container[int] = (),
               states: Sequence[TrialState] | None = None) -> StudyScan:
    """Return one read of the study's attempts (only trials in ``states``, when given)."""
    trials = storage.get_all_trials(study_id, deepcopy=False, states=tuple(states) if states else None)
    return sort_attempts(trials, grace_period=grace_period, mine=mine)
