"""What a run, a worker or a study preparation did: cell counts, failures, timings, and the summary printed."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from ..spec import Cell
from ._status import StudyStatus

__all__ = ["FailedCell", "StudyReport"]

MODES = ("run", "worker", "prepare")
"""``run``: this process ran the cells (``run``); ``worker``: it took cells of a shared study
(``worker``); ``prepare``: it created or extended the study and ran nothing (``run --workers 0``)."""


@dataclass(frozen=True)
class FailedCell:
    """A cell that is not COMPLETE after this run's retries, with its last error."""

    cell: Cell
    error: str
    attempts: int


@dataclass(frozen=True)
class StudyReport:
    """What a run did; ``exit_code`` is 0 when it did what was asked (see :attr:`exit_code`)."""

    study_name: str
    storage: str
    """The storage URL with its password masked."""
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
    inline: bool = False
    """Trials ran in a thread of this process (for tests and debugging)."""
    mode: str = "run"
    """One of :data:`MODES`."""
    artifact_dir: str | None = None
    status: StudyStatus | None = None
    """Every cell's state at the end of the run."""
    shared_by: str | None = "hosts"
    """Who may write the storage at once (the backend's ``shared_by``): "hosts", "host" or None (one process)."""

    @property
    def exit_code(self) -> int:
        """0 when every cell is COMPLETE (``run``), when no cell failed (``worker``), or always (``prepare``)."""
        if self.mode == "prepare":
            return 0
        if self.mode == "worker":
            return 1 if self.failed else 0
        return 0 if self.complete == self.total else 1

    def summary(self) -> str:
        """Return the end-of-run summary: totals, the table by factor level, failed cells with errors."""
        rate = f", {3600 * self.ran / self.seconds:.0f} attempts/hour" if self.ran and self.seconds else ""
        head = f"study {self.study_name} in {self.storage}: {self.complete}/{self.total} cells complete"
        if self.mode == "prepare" and self.shared_by is None:
            lines = [f"{head}, {self.total - self.complete} to run; no trials were run (--workers 0)",
                     "A SQLite file is written by one process: run the cells with orca-ablate run SPEC --storage "
                     f"{shlex.quote(self.storage)} --study-name {shlex.quote(self.study_name)} --workers K "
                     "(for workers on many hosts, use PostgreSQL)"]
        elif self.mode == "prepare":
            lines = [f"{head}, {self.total - self.complete} to run; no trials were run (--workers 0)",
                     f"Start workers, on {'any host that reaches' if self.shared_by == 'hosts' else 'the host of'} "
                     "the storage (each takes cells until none are left):",
                     f"  orca-ablate worker --storage {shlex.quote(self.storage)} "
                     f"--study-name {shlex.quote(self.study_name)}"]
            if "***" in self.storage:
                lines.append("  (the password is masked: put it in ~/.pgpass rather than on the command line)")
        else:
            who = ("this worker" if self.mode == "worker" else
                   "this run" + (" in this process" if self.inline else f" with {self.workers} worker(s)"))
            lines = [f"{head}; {who}: {self.completed_now} completed, {self.ran} attempts finished "
                     f"in {self.seconds:.1f} s{rate}"]
        if self.artifact_dir:
            lines.append(f"artifacts (reports, figures): {self.artifact_dir}")
        elif self.mode != "worker":
            lines.append("no artifact directory recorded: give --artifact-dir DIR (one every host can reach) so that "
                         "reports and figures appear in the dashboard")
        if self.stale and self.mode == "prepare":
            lines.append(f"marked {len(self.stale)} stale attempts of killed runs FAIL (trials "
                         f"{_numbers(self.stale)}); workers re-run their cells")
        elif self.stale:
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
