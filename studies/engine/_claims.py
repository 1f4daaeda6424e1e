"""Claiming a free cell, and withdrawing stale attempts: the two writes that read the study first.

``claim_next`` is the one place that claims a cell. Under the study lock (a
PostgreSQL advisory lock, or a journal file's claim lock file; see ``storage._locks``) it reads the
study once, marks stale attempts, and creates the RUNNING trial of the first
free cell, so any number of processes on any number of hosts never claim one
cell twice. A storage without such a lock (SQLite, one writer) relies on a check
after the claim instead: of two attempts claimed at once, the lower-numbered one runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..spec import Cell
from ..storage import StorageError
from ..storage._locks import study_lock
from ..storage._rdb_direct import LockLost
from ._attempts import Owner, claim, mark_stale
from ._state import Ident, StudyScan, scan_study

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage

__all__ = ["Claimed", "claim_next", "reap_stale", "withdraw_stale"]

LOCK_LOST_TRIES = 5


@dataclass
class Claimed:
    """What :func:`claim_next` claimed (``cell`` is None when every candidate was taken), and what it saw."""

    scan: StudyScan = field(default_factory=StudyScan)
    """The read of the study the claim was decided on (stale attempts in it were withdrawn)."""
    cell: Cell | None = None
    trial_id: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """The claimed attempt's TrialConfig dict."""
    exclusive: bool = False
    """The claim was made under a lock that every other claimer takes too: no check after it is needed."""
    exhausted: set[Ident] = field(default_factory=set)
    """Candidates skipped because their failures since ``since`` used up ``max_failures``."""
    stale: list[int] = field(default_factory=list)
    """Numbers of stale attempts marked FAIL on the way."""


def claim_next(storage: BaseStorage, study_id: int, cells: Sequence[Cell], *,
               prepare: Callable[[Cell], tuple[Mapping[str, Any], Mapping[str, Any]]],
               distributions: Mapping[str, BaseDistribution], owner: Owner, grace_period: float,
               exclude: Iterable[int] = (), since: datetime | None = None,
               max_failures: int | None = None) -> Claimed:
    """Claim the first of ``cells`` that is free; return the claim and the read of the study it made.

    A cell is free when it has no COMPLETE attempt, no live RUNNING attempt (stale
    ones are marked FAIL here; ``exclude`` holds trial ids of the caller's own running
    attempts) and, with ``max_failures``, at most that many failed attempts finished
    since ``since``. ``prepare(cell)`` returns its (TrialConfig dict, search params);
    it runs under the lock, so it may read the study (the search sampler does).
    """
    mine = set(exclude)
    for _ in range(LOCK_LOST_TRIES):
        found = Claimed()
        try:
            with study_lock(storage, study_id) as exclusive:
                found = Claimed(scan_study(storage, study_id, grace_period=grace_period, mine=mine),
                                exclusive=exclusive)
                found.stale = withdraw_stale(storage, found.scan)
                found.cell = _first_free(found, cells, mine, since, max_failures)
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


def _first_free(found: Claimed, cells: Sequence[Cell], mine: set[int], since: datetime | None,
                max_failures: int | None) -> Cell | None:
    taken = found.scan.complete() | found.scan.running(exclude=mine)
    failures = found.scan.failures(since)
    for cell in cells:
        if cell.ident in taken:
            continue
        if max_failures is not None and failures.get(cell.ident, (0, ""))[0] > max_failures:
            found.exhausted.add(cell.ident)
            continue
        return cell
    return None


def withdraw_stale(storage: BaseStorage, scan: StudyScan) -> list[int]:
    """Mark every stale attempt of ``scan`` FAIL (``stale: true``); return the numbers of those it marked."""
    return [a.trial.number for a in scan.orphaned() if mark_stale(storage, a.trial._trial_id, f"{a.reason}")]


def reap_stale(storage: BaseStorage, study_id: int, *, grace_period: float, exclude: Iterable[int] = ()) -> list[int]:
    """Read the study and mark its stale RUNNING attempts FAIL; return their trial numbers.

    ``exclude`` holds trial ids this process owns and keeps alive.
    """
    from optuna.trial import TrialState

    scan = scan_study(storage, study_id, grace_period=grace_period, mine=set(exclude), states=(TrialState.RUNNING,))
    return withdraw_stale(storage, scan)
