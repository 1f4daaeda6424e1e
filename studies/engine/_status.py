"""Where a study stands: each cell complete, running, failed or waiting, grouped by factor level."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.contract import BASELINE, CELL

from ..spec import Cell, StudySpec
from ..storage import load_study, open_storage, stored_spec
from ._adaptive import study_cells
from ._attempts import DEFAULT_GRACE_PERIOD
from ._state import sort_attempts

if TYPE_CHECKING:
    import optuna

__all__ = ["STATES", "CellStatus", "StudyStatus", "format_table", "study_status"]

STATES = ("complete", "running", "failed", "waiting")
"""A cell is complete (a COMPLETE attempt), running (a RUNNING one), failed (its last attempt
failed with an error) or waiting (not tried yet, or its last attempt was stale)."""


@dataclass(frozen=True)
class CellStatus:
    """One cell's state, its attempts and, when failed, the last error."""

    cell: Cell
    state: str
    attempts: int
    errors: int
    """Failed attempts that were not stale."""
    value: float | None = None
    last_error: str | None = None
    looks_stale: bool = False
    """RUNNING, but its owner is gone or silent: the next ``run`` re-runs it."""


@dataclass(frozen=True)
class StudyStatus:
    """Every cell of a study's spec with its state."""

    study_name: str
    spec: StudySpec
    cells: tuple[CellStatus, ...]

    def counts(self) -> dict[str, int]:
        """Return state -> number of cells."""
        return {s: sum(c.state == s for c in self.cells) for s in STATES}

    def table(self) -> str:
        """Return the cell counts per state, one row per factor level (tasks, factors, seeds)."""
        rows: list[list[Any]] = []
        groups: list[tuple[str, Sequence[Any]]] = [("task", self.spec.tasks)]
        groups += [(f.path, f.levels) for f in self.spec.factors]
        groups += [("seed", self.spec.seeds)]
        baselines = list(dict.fromkeys(name for _, names in self.spec.baselines for name in names))
        if baselines:
            groups += [(BASELINE, baselines)]
        for path, levels in groups:
            for level in levels:
                members = [c for c in self.cells if _level(c.cell, path) == level
                           and type(_level(c.cell, path)) is type(level)]
                rows.append([path, _show(level), *(sum(c.state == s for c in members) for s in STATES),
                             len(members)])
        counts = self.counts()
        rows.append(["all", "", *(counts[s] for s in STATES), len(self.cells)])
        return format_table(["factor", "level", *STATES, "total"], rows)

    def cell_table(self, states: Iterable[str] = STATES) -> str:
        """Return one row per cell in the given states: state, attempts, value, cell, last error."""
        wanted = set(states)
        rows = [[c.state + (" (stale?)" if c.looks_stale else ""), c.attempts,
                 "" if c.value is None else f"{c.value:.4g}", c.cell.label(), _clip(c.last_error or "")]
                for c in self.cells if c.state in wanted]
        return format_table(["state", "attempts", "value", CELL, "last error"], rows)


def study_status(storage: str | None, study_name: str | None, *,
                 grace_period: float = DEFAULT_GRACE_PERIOD) -> StudyStatus:
    """Return the status of a study (the only one in the storage when ``study_name`` is None)."""
    study = load_study(open_storage(storage, must_exist=True), study_name)
    return status_of(study, stored_spec(study), grace_period=grace_period)


def status_of(study: optuna.Study, spec: StudySpec, *, grace_period: float = DEFAULT_GRACE_PERIOD) -> StudyStatus:
    """Return the status of every cell of ``spec`` from the trials of ``study``."""
    scan = sort_attempts(study.get_trials(deepcopy=False), grace_period=grace_period)
    out = []
    for cell in study_cells(spec, study):
        attempts = scan.of(cell.ident)
        states = [a.state for a in attempts]
        errors = states.count("failed")
        failed = [a for a in attempts if a.state in ("failed", "withdrawn")]
        last_error = (failed[-1].error or None) if failed else None
        if "complete" in states:
            value = next(a.trial.value for a in attempts if a.state == "complete")
            status = CellStatus(cell, "complete", len(attempts), errors, value)
        elif "running" in states or "orphaned" in states:
            stale = "running" not in states
            status = CellStatus(cell, "running", len(attempts), errors, None, last_error, stale)
        elif states and states[-1] == "failed":
            status = CellStatus(cell, "failed", len(attempts), errors, None, last_error)
        else:
            status = CellStatus(cell, "waiting", len(attempts), errors, None, last_error)
        out.append(status)
    return StudyStatus(study.study_name, spec, tuple(out))


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Return a plain-text table: left-aligned text, right-aligned numbers."""
    body = [[str(x) for x in row] for row in rows]
    numeric = [all(_is_number(r[i]) for r in body if r[i] != "") if body else False for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)).rstrip()

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in body)])


def _level(cell: Cell, path: str) -> Any:
    return cell.params().get(path, _ABSENT)


_ABSENT = object()
"""The level of a factor in a cell that does not have it (a baseline cell has no factor levels)."""


def _show(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _clip(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
