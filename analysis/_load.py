"""Read a study from Optuna storage into one tidy frame of trials, plus its companions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from analysis._columns import AnalysisError
from analysis._contrasts import level_text
from harness import contract

__all__ = ["StudyData", "load_study", "load_trials", "factor_columns", "varying_factors", "otdd_scale_factors",
           "otdd_strata", "OTDD_SCALE_FACTORS", "OUTCOME_COLUMNS", "OTDD_REDUCTION", "TRIAL", "VALUE"]

TRIAL = "trial"
"""Trials-frame column: the Optuna trial number."""
VALUE = "value"
"""Trials-frame column: the trial's Optuna objective value (the first, for a multi-objective study)."""
OTDD_REDUCTION = "otdd_reduction"
"""A derived column (``otdd_before - otdd_after``) that correlation tests compute when asked for."""
_TASK, _SEED = contract.PARAM_TASK, contract.PARAM_SEED
_RESULT_NUMBERS: tuple[str, ...] = (contract.OTDD_BEFORE, contract.OTDD_AFTER, contract.VAL_SCORE,
                                    contract.TEST_SCORE)

OUTCOME_COLUMNS: tuple[str, ...] = (*_RESULT_NUMBERS, VALUE, contract.SECONDS)
"""Numeric columns every trials frame has (NaN where a trial did not record them)."""

_OPTIONAL_TEXT: tuple[str, ...] = (contract.MODALITY, contract.METRIC, contract.DIRECTION)
_OPTIONAL_NUMBERS: tuple[str, ...] = (contract.PEAK_MEM_MB,)
_RESERVED = {TRIAL, _TASK, _SEED, contract.CELL, *OUTCOME_COLUMNS, *_OPTIONAL_TEXT, *_OPTIONAL_NUMBERS,
             OTDD_REDUCTION}
_STEP, _OTDD = "step", "otdd"
_SECONDARY = "__secondary__"  # a row's secondary metrics until _secondary makes them columns


BASELINE_COLUMNS = (TRIAL, _TASK, _SEED, contract.BASELINE, contract.METRIC, contract.DIRECTION, contract.VAL_SCORE,
                    contract.TEST_SCORE, contract.SECONDS)
"""Columns of ``StudyData.baselines``: one row per COMPLETE baseline trial."""


@dataclass(frozen=True)
class StudyData:
    """One study read back from storage.

    Attributes:
        name: the study name.
        trials: one row per kept COMPLETE trial (see :func:`load_trials` for the columns).
        summary: ``state, count`` rows: kept COMPLETE trials, DUPLICATE complete trials of a cell
            already seen, and every other state (FAIL, RUNNING, WAITING, PRUNED).
        factors: the factor paths, in the study's order.
        spec: the study's spec (``{}`` when none was recorded).
        curves: long frame ``trial, task, seed, <factors>, step, otdd`` of each kept trial's
            ``otdd_curve`` (step 0 is before alignment).
        failures: ``trial, task, seed, error`` for every FAIL trial.
        artifact_dir: the study's artifact directory, or None.
        study: the loaded :class:`optuna.Study` (for artifacts and notes).
        baselines: ``trial, task, seed, baseline, metric, direction, val_score, test_score, seconds``
            of each COMPLETE classical-baseline trial (a spec's ``baselines:``); kept out of ``trials``.
        secondary: the study's secondary metrics, name -> direction (``maximize`` / ``minimize``):
            every test-split metric a trial recorded (``details.test_metrics``) other than its own
            ``metric``; each is a column of ``trials`` (also ``trials.attrs["secondary"]``).
    """

    name: str
    trials: pd.DataFrame
    summary: pd.DataFrame
    factors: tuple[str, ...]
    spec: Mapping[str, Any] = field(default_factory=dict)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)
    artifact_dir: str | None = None
    study: optuna.Study | None = None
    baselines: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BASELINE_COLUMNS)))
    secondary: Mapping[str, str] = field(default_factory=dict)


def _describe(storage: str | BaseStorage) -> str:
    return storage if isinstance(storage, str) else type(storage).__name__


def _resolve(storage: str | BaseStorage, study_name: str) -> str | BaseStorage:
    if not isinstance(storage, str):
        return storage
    try:
        journal = contract.journal_path(storage)
    except ValueError as exc:  # `journal:` without a file
        raise AnalysisError(str(exc)) from None
    if journal is not None:
        if not journal.is_file():
            raise AnalysisError(f"no study {study_name!r}: the journal file {str(journal)!r} of storage {storage!r} "
                                "does not exist")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(journal)))
    path = contract.sqlite_path(storage)
    # Optuna would create an empty database for a mistyped path; refuse instead.
    if path is not None and not path.exists():
        raise AnalysisError(f"no study {study_name!r}: the SQLite file {str(path)!r} of storage {storage!r} "
                            "does not exist")
    return storage


def _open_study(storage: str | BaseStorage, study_name: str) -> optuna.Study:
    where = _describe(storage)
    resolved = _resolve(storage, study_name)
    journal = contract.journal_path(storage) if isinstance(storage, str) else None
    hint = f"list the studies with `optuna studies --storage {journal or where}`"
    try:
        return optuna.load_study(study_name=study_name, storage=resolved)
    except KeyError:
        try:
            names = optuna.study.get_all_study_names(resolved)
        except (optuna.exceptions.OptunaError, OSError, ValueError):  # the list is only a hint
            names = []
        known = f"; studies there: {sorted(names)}" if names else "; that storage holds no studies"
        raise AnalysisError(f"no study {study_name!r} in storage {where!r}{known}; {hint}") from None


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _key(trial: FrozenTrial, factors: Sequence[str]) -> str:
    cell = trial.user_attrs.get(contract.CELL)
    if cell is not None:
        # With trials_per_cell > 1 a cell has several slots, each meant to complete once.
        return f"cell:{cell}#{trial.user_attrs.get(contract.SLOT, 0)}"
    params = trial.params
    return "params:" + repr((params.get(_TASK), params.get(_SEED), tuple(repr(params.get(f)) for f in factors)))


def _factors(attrs: Mapping[str, Any], trials: Sequence[FrozenTrial]) -> tuple[str, ...]:
    """Return the study's factor paths: its ``factors`` attr, else every trial param but task and seed."""
    recorded = attrs.get(contract.FACTORS)
    if recorded:
        return tuple(str(f) for f in recorded)
    seen: dict[str, None] = {}
    for t in trials:
        for p in t.params:
            if p not in (_TASK, _SEED):
                seen.setdefault(p, None)
    return tuple(seen)


def _row(t: FrozenTrial, factors: Sequence[str]) -> dict[str, Any]:
    """Return one trials-frame row of a COMPLETE trial (before column ordering)."""
    ua = t.user_attrs
    row: dict[str, Any] = {TRIAL: t.number, _TASK: t.params.get(_TASK, ua.get(_TASK)),
                           _SEED: t.params.get(_SEED, ua.get(_SEED))}
    for f in factors:
        row[f] = t.params.get(f)
    for name in _OPTIONAL_TEXT:
        if name in ua:
            row[name] = ua[name]
    for name in _RESULT_NUMBERS:
        row[name] = _number(ua.get(name))
    row[VALUE] = _number(t.value if t.values is None or len(t.values) == 1 else t.values[0])
    row[contract.SECONDS] = _number(ua.get(contract.SECONDS))
    for name in _OPTIONAL_NUMBERS:
        if name in ua:
            row[name] = _number(ua[name])
    details = ua.get(contract.DETAILS)
    metrics = details.get(contract.TEST_METRICS) if isinstance(details, Mapping) else None
    if isinstance(metrics, Mapping):
        own = ua.get(contract.METRIC)
        row[_SECONDARY] = {str(k): _number(v) for k, v in metrics.items() if str(k) != own}
    return row


def _secondary(rows: list[dict[str, Any]], factors: Sequence[str]) -> dict[str, str]:
    """Pop each row's secondary metrics into columns; return name -> direction of those kept.

    A name that is also a factor or a trials-frame column is left out (it would overwrite it).
    """
    taken = {*_RESERVED, *factors, contract.BASELINE}
    names: dict[str, str] = {}
    for row in rows:
        for name in row.get(_SECONDARY, {}):
            if name not in taken:
                names.setdefault(name, "minimize" if name in contract.MINIMISED_METRICS else "maximize")
    for row in rows:
        given = row.pop(_SECONDARY, {})
        for name in names:
            row[name] = given.get(name, math.nan)
    return names


_STATES = ("COMPLETE", "DUPLICATE", "FAIL", "RUNNING", "WAITING", "PRUNED")


def load_study(storage: str | BaseStorage, study_name: str) -> StudyData:
    """Return the study ``study_name`` read from ``storage``.

    ``storage`` is an Optuna storage object or URL (``sqlite:///FILE.db``, ``postgresql://...``),
    or a journal file as the CLI names it (``journal:///PATH.log``, or a path ending in ``.log``).

    COMPLETE trials become rows of ``.trials``; a COMPLETE trial whose cell (user attrs ``cell`` and
    ``slot``, or else its task, seed and factor params) was already seen is a duplicate: the first is
    kept, the rest are counted in ``.summary``. ``direction`` comes from the trials' user attrs, else
    from the spec. A missing study, or one without a COMPLETE trial, raises
    :class:`AnalysisError`.
    """
    study = _open_study(storage, study_name)
    attrs = study.user_attrs
    trials = study.get_trials(deepcopy=False)
    factors = _factors(attrs, trials)
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    keys: set[str] = set()
    for t in sorted(trials, key=lambda tr: tr.number):
        if t.state != TrialState.COMPLETE:
            counts[t.state.name] += 1
            if t.state == TrialState.FAIL:
                failures.append({TRIAL: t.number, _TASK: t.params.get(_TASK), _SEED: t.params.get(_SEED),
                                 contract.ERROR: str(t.user_attrs.get(contract.ERROR, ""))})
            continue
        key = _key(t, factors)
        if key in keys:
            counts["DUPLICATE"] += 1
            continue
        keys.add(key)
        counts["COMPLETE"] += 1
        if t.params.get(contract.BASELINE) is not None:  # a classical baseline: kept apart from the ORCA rows
            baselines.append(_baseline_row(t))
            continue
        row = _row(t, factors)
        rows.append(row)
        curve = t.user_attrs.get(contract.OTDD_CURVE)
        if isinstance(curve, (list, tuple)):
            base = {TRIAL: t.number, _TASK: row[_TASK], _SEED: row[_SEED], **{f: row[f] for f in factors}}
            curves.extend({**base, _STEP: i, _OTDD: _number(v)} for i, v in enumerate(curve))
    if not rows:
        states = dict(counts) or "no trials at all"
        raise AnalysisError(f"study {study_name!r} in storage {_describe(storage)!r} has no COMPLETE trial "
                            f"({states}); run it first (`orca-ablate run`), or check the name: list the studies "
                            f"with `optuna studies --storage {_describe(storage)}`")
    secondary = _secondary(rows, factors)
    frame = _trials_frame(rows, factors, list(secondary))
    frame.attrs["secondary"] = dict(secondary)
    spec = dict(attrs.get(contract.SPEC) or {})
    if contract.DIRECTION not in frame.columns and spec.get(contract.DIRECTION) in ("maximize", "minimize"):
        frame.insert(frame.columns.get_loc(contract.OTDD_BEFORE), contract.DIRECTION, spec[contract.DIRECTION])
    frame.attrs["spec"] = spec
    summary = pd.DataFrame({"state": list(_STATES), "count": [counts.get(s, 0) for s in _STATES]})
    artifact_dir = attrs.get(contract.ARTIFACT_DIR)
    return StudyData(
        name=study_name,
        trials=frame,
        summary=summary,
        factors=factors,
        spec=spec,
        curves=pd.DataFrame(curves, columns=[TRIAL, _TASK, _SEED, *factors, _STEP, _OTDD]),
        failures=pd.DataFrame(failures, columns=[TRIAL, _TASK, _SEED, contract.ERROR]),
        artifact_dir=str(artifact_dir) if artifact_dir else None,
        study=study,
        baselines=pd.DataFrame(baselines, columns=list(BASELINE_COLUMNS)),
        secondary=secondary,
    )





def _baseline_row(t: FrozenTrial) -> dict[str, Any]:
    ua = t.user_attrs
    return {TRIAL: t.number, _TASK: str(t.params.get(_TASK)), _SEED: t.params.get(_SEED),
            contract.BASELINE: str(t.params[contract.BASELINE]), contract.METRIC: ua.get(contract.METRIC),
            contract.DIRECTION: ua.get(contract.DIRECTION), contract.VAL_SCORE: _number(ua.get(contract.VAL_SCORE)),
            contract.TEST_SCORE: _number(ua.get(contract.TEST_SCORE)),
            contract.SECONDS: _number(ua.get(contract.SECONDS))}


def _trials_frame(rows: list[dict[str, Any]], factors: Sequence[str], secondary: Sequence[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    present_text = [c for c in _OPTIONAL_TEXT if c in frame.columns]
    present_num = [c for c in _OPTIONAL_NUMBERS if c in frame.columns]
    columns = [TRIAL, _TASK, _SEED, *factors, *present_text, *OUTCOME_COLUMNS, *present_num, *secondary]
    frame = frame.reindex(columns=columns)
    frame[_TASK] = frame[_TASK].astype(str)
    frame[TRIAL] = frame[TRIAL].astype(int)
    frame.attrs["factors"] = list(factors)
    return frame


def load_trials(storage: str | BaseStorage, study_name: str) -> pd.DataFrame:
    """Return one tidy row per kept COMPLETE trial of ``study_name``.

    Columns: ``trial, task, seed``, one column per factor (named by its path), ``modality``,
    ``metric`` and ``direction`` when recorded, then ``otdd_before, otdd_after, val_score,
    test_score, value, seconds`` (NaN where missing), ``peak_mem_mb`` when recorded, then one column per
    secondary metric. ``frame.attrs["factors"]`` lists the factors, ``frame.attrs["secondary"]`` the
    secondary metrics (name -> direction).
    Failed, running and duplicate trials are left out; :func:`load_study` counts them.
    """
    return load_study(storage, study_name).trials


def factor_columns(df: pd.DataFrame) -> list[str]:
    """Return the factor columns of a trials frame: ``df.attrs["factors"]``, else every non-reserved column."""
    recorded = df.attrs.get("factors")
    if recorded:
        return [f for f in recorded if f in df.columns]
    secondary = df.attrs.get("secondary") or {}
    return [c for c in df.columns if c not in _RESERVED and c not in secondary]


def varying_factors(df: pd.DataFrame) -> list[str]:
    """Return the factor columns of ``df`` (tidy trials) with at least two recorded levels."""
    return [f for f in factor_columns(df) if df[f].nunique(dropna=True) >= 2]


OTDD_SCALE_FACTORS = ("embedder.proxy", "embedder.proxy_samples", "body.path", "body.pretrained")
"""Factors that change what OTDD is measured against: the proxy data, or the body's embedding space."""


def otdd_scale_factors(df: pd.DataFrame) -> list[str]:
    """Return the factors of ``df`` (tidy trials) that vary and change OTDD's scale (``OTDD_SCALE_FACTORS``)."""
    return [f for f in varying_factors(df) if f in OTDD_SCALE_FACTORS]


def otdd_strata(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Return (``df`` with ``task`` refined by the OTDD-scale factors' levels, those factors).

    Input: a tidy trials frame. When the study varies a factor of ``OTDD_SCALE_FACTORS``, OTDD
    values of its levels are distances to different data (or in different spaces), so OTDD
    correlations are taken within ``"task | factor=level"`` strata; otherwise ``df`` is returned as is.
    """
    scales = otdd_scale_factors(df)
    if not scales:
        return df, []
    out = df.copy()
    out[_TASK] = out[_TASK].astype(str) + out[scales].apply(
        lambda r: "".join(f" | {c}={level_text(v)}" for c, v in r.items()), axis=1)
    out.attrs = dict(df.attrs)
    return out, scales
