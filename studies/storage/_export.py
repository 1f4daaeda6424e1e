"""Every trial of a study as one tidy table: a row per trial with its params, results and attrs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import flatten

from ._errors import StorageError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["EXPORT_FORMATS", "export_frame", "write_export"]

EXPORT_FORMATS = ("csv", "parquet")


def export_frame(study: optuna.Study) -> pd.DataFrame:
    """Return one row per trial of ``study``, every state, in trial-number order.

    Columns: ``number, state, value, datetime_start, datetime_complete, seconds_wall``,
    then each param under its name (``task``, the factor paths, ``seed``, searched
    paths), then each user attr under its name; nested attrs are flattened with dots
    (``config.embedder.epochs``, ``seconds_by_stage.align``) and lists are JSON text.
    """
    import pandas as pd

    rows = []
    for trial in study.get_trials(deepcopy=False):
        start, end = trial.datetime_start, trial.datetime_complete
        row: dict[str, Any] = {
            "number": trial.number, "state": trial.state.name,
            "value": trial.values[0] if trial.values else None,
            "datetime_start": start, "datetime_complete": end,
            "seconds_wall": (end - start).total_seconds() if start and end else None,
        }
        row.update(trial.params)
        for key, value in trial.user_attrs.items():
            if isinstance(value, Mapping):
                row.update({f"{key}.{path}": _cell(item) for path, item in flatten(value).items()})
            else:
                row[key] = _cell(value)
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values("number", ignore_index=True) if len(frame) else frame


def write_export(frame: pd.DataFrame, out: str | Path, fmt: str) -> None:
    """Write ``frame`` to ``out`` as CSV or Parquet; raise StorageError when Parquet support is missing."""
    if fmt == "csv":
        frame.to_csv(out, index=False)
        return
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None:  # pandas' Parquet engine
        raise StorageError("--format parquet needs pyarrow: pip install 'orca-ablate[parquet]' (or use "
                           "--format csv)")
    frame.to_parquet(out, index=False)


def _cell(value: Any) -> Any:
    """Return a value a CSV or Parquet column holds: scalars as they are, lists as JSON text."""
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return value
