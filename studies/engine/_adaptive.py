"""Adaptive seeds: open a study's declared seeds round by round until its hypotheses are decided.

A spec with ``seeds: {start, step, max}`` declares seeds 0..max-1 (the ``seed`` distribution is
fixed at creation) and records its rounds in study user attrs ``adaptive_round_<k>``: the seeds
look k opened, the keys of the cells it opened, which hypotheses were open, and (after the look)
what was decided. The study's cells are the cells of its recorded rounds, so every process
(a local run, a PostgreSQL worker, a Slurm array task) sees the same cells, and a killed run
resumes at the recorded round. When a round's cells are all finished, any process may take the
look (:func:`advance`): it reads the study back, runs the group-sequential procedure
(``analysis._sequential``) and records the next round; the look is a deterministic function of
the finished trials, so two processes taking it at once write the same attr.

Round 0 opens every cell of the first ``start`` seeds. Round k opens the next ``step`` seeds
for the cells that a still-open hypothesis reads: the tasks it covers, the levels of its factor
it compares (every level of the other factors, so blocks stay matched), and the baselines of
``reference: best_baseline``. A hypothesis stops asking for seeds once it is decided (its
verdict frozen) or futile (not decidable by ``max`` at the observed variance).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness.contract import ADAPTIVE_ROUND

from ..spec import Cell, StudySpec, expand_cells

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["advance", "describe", "round_attr", "rounds", "start_rounds", "study_cells"]


def round_attr(look: int) -> str:
    """Return the study user attr of round ``look`` (0-based)."""
    return f"{ADAPTIVE_ROUND}_{look:03d}"


def rounds(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the recorded rounds of a study's user attrs, in look order."""
    found = sorted((k, v) for k, v in attrs.items() if k.startswith(ADAPTIVE_ROUND + "_") and isinstance(v, Mapping))
    return [dict(v) for _, v in found]


def study_cells(spec: StudySpec, study: optuna.Study | None) -> list[Cell]:
    """Return the cells a study runs: every cell of a fixed spec; an adaptive one's recorded rounds' cells."""
    cells = expand_cells(spec)
    if spec.adaptive is None:
        return cells
    recorded = rounds(study.user_attrs) if study is not None else []
    if not recorded:
        return _first_cells(spec, cells)
    opened = {key for r in recorded for key in r.get("cells", ())}
    return [c for c in cells if c.key in opened]


def _first_cells(spec: StudySpec, cells: Sequence[Cell]) -> list[Cell]:
    assert spec.adaptive is not None
    first = set(spec.seeds[: spec.adaptive.start])
    return [c for c in cells if c.seed in first]


def start_rounds(study: optuna.Study, spec: StudySpec) -> None:
    """Record round 0 of an adaptive study (every cell of the first ``start`` seeds) unless it is recorded."""
    if spec.adaptive is None or rounds(study.user_attrs):
        return
    cells = _first_cells(spec, expand_cells(spec))
    study.set_user_attr(round_attr(0), {"look": 0, "seeds": list(spec.seeds[: spec.adaptive.start]),
                                        "cells": sorted({c.key for c in cells}), "open": None, "decided": {}})


def advance(storage: BaseStorage, study: optuna.Study, spec: StudySpec, finished: bool) -> bool:
    """Take the look after the last recorded round and record the next; return whether it opened cells.

    ``finished``: every cell of the recorded rounds is COMPLETE or out of retries (the caller knows
    from its scan); without it nothing happens. The last round records ``final: true``.
    """
    if spec.adaptive is None or not finished:
        return False
    recorded = rounds(study.user_attrs)  # read from the storage at each access
    if not recorded or recorded[-1].get("final"):
        return False
    look = len(recorded) - 1
    summary, open_ids, needed = _look(storage, study, spec, look)
    looks = spec.adaptive.looks()
    final = not open_ids or look + 1 >= len(looks)
    record = {**recorded[-1], "open": open_ids, "decided": summary, "final": final}
    study.set_user_attr(round_attr(look), record)
    if final:
        return False
    new_seeds = list(spec.seeds[looks[look]: looks[look + 1]])
    cells = [c for c in expand_cells(spec) if c.seed in new_seeds and _needed(c, needed)]
    study.set_user_attr(round_attr(look + 1), {"look": look + 1, "seeds": new_seeds,
                                               "cells": sorted({c.key for c in cells}), "open": None,
                                               "decided": {}})
    return bool(cells)


def _look(storage: BaseStorage, study: optuna.Study, spec: StudySpec,
          look: int) -> tuple[dict[str, dict[str, Any]], list[str], list[tuple[str, frozenset[str], str | None]]]:
    """Return (hypothesis -> verdict record, open hypothesis ids, needed (task, levels, factor) sets)."""
    import analysis
    from analysis._hypotheses import BEST_BASELINE, task_list
    from analysis._sequential import SEQUENTIAL, Design, needed_levels, sequential_tests, still_open
    from analysis._spec import read_hypotheses

    data = analysis.load_study(storage, study.study_name)
    assert spec.adaptive is not None
    design = Design(spec.adaptive.looks(), spec.adaptive.spending)
    hypotheses = read_hypotheses(data.spec)
    rows = sequential_tests(data.trials, design, list(spec.seeds), baselines=data.baselines, hypotheses=hypotheses)
    summary = rows[(rows["test"] == SEQUENTIAL) & (rows["variant"] == "summary")]
    out: dict[str, dict[str, Any]] = {}
    open_ids: list[str] = []
    for row in summary.itertuples():
        note = str(row.note)
        out[str(row.hypothesis)] = {"verdict": str(row.verdict), "note": note,
                                    "decided_at": None if row.df != row.df else int(row.df)}
        if still_open(note):
            open_ids.append(str(row.hypothesis))
    by_id = {h.id: h for h in hypotheses}
    needed: list[tuple[str, frozenset[str], str | None]] = []
    for hid in open_ids:
        h = by_id[hid]
        if not h.factor:  # a conjunction: its parts ask for their own cells
            continue
        tasks, _ = task_list(data.trials, h)
        levels = needed_levels(h) or ()
        for task in tasks:
            needed.append((task, frozenset(levels), h.factor))
            if h.reference == BEST_BASELINE:
                needed.append((task, frozenset(), None))  # the task's baseline cells
    return out, open_ids, needed


def _needed(cell: Cell, needed: Sequence[tuple[str, frozenset[str], str | None]]) -> bool:
    from analysis._contrasts import level_text

    levels = dict(cell.levels)
    for task, wanted, factor in needed:
        if cell.task != task:
            continue
        if factor is None:
            if cell.baseline is not None:
                return True
            continue
        if cell.baseline is None and factor in levels and level_text(levels[factor]) in wanted:
            return True
    return False


def describe(record: Mapping[str, Any]) -> str:
    """Return one line about a round for logs: look, seeds, cells, open hypotheses."""
    opened = record.get("open")
    return (f"look {record.get('look', 0) + 1}: seeds {record.get('seeds')} ({len(record.get('cells', ()))} cells)"
            + (f"; open after it: {json.dumps(opened)}" if opened is not None else ""))

