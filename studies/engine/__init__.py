"""The engine: claim cells, run them in worker processes, record results, heartbeats and staleness.

- ``_state``: the one reading of a study's attempts (complete, running, stale, failed, withdrawn);
- ``_attempts``: one attempt's records: claim, heartbeat, result, failure, staleness;
- ``_claims``: claiming the first free cell (under the study lock), withdrawing stale attempts;
- ``_workers``: local worker processes that run trial functions and talk over pipes;
- ``_runner``: the run loop of the storage-owning process;
- ``_runs``: ``run_study`` (``run``) and ``run_worker`` (``worker``);
- ``_status``, ``_report``: where a study stands, and what a run did.
"""

from __future__ import annotations

from ._attempts import DEFAULT_GRACE_PERIOD
from ._report import FailedCell, StudyReport
from ._runner import WorkerError
from ._runs import run_study, run_worker
from ._state import StudyScan, scan_study, sort_attempts, trial_ident
from ._status import STATES, CellStatus, StudyStatus, format_table, status_of, study_status

__all__ = [
    "DEFAULT_GRACE_PERIOD", "STATES", "CellStatus", "FailedCell", "StudyReport", "StudyScan", "StudyStatus",
    "WorkerError", "format_table", "run_study", "run_worker", "scan_study", "sort_attempts", "status_of", "study_status",
    "trial_ident",
]
