"""The names every writer and reader of a trial agrees on: result fields, trial and study attrs, storage URLs.

One module spells them; ``harness`` writes results with them, ``studies`` writes
them into Optuna storage, ``analysis`` reads them back. Standard library only, so
that every layer (and ``orca-ablate --help``) may import it. A test checks that
the names of :data:`CHECKED_NAMES` appear as string literals nowhere else in the
product.

Storage format: the values are the keys of studies written by earlier versions,
so they never change; add new names, never rename old ones.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "ADAPTIVE_ROUND", "ARTIFACT_DIR", "ATTEMPT", "BASELINE", "BASE_CONFIG", "BEST_EPOCH", "CELL", "CHECKED_NAMES", "CONFIG", "CREATED_BY",
    "DEFAULT_STORAGE", "DETAILS", "DEVICE", "DIRECTION", "ERROR", "EXTENSION_COPY_COMPLETE", "FACTORS",
    "GIT_COMMIT", "HEARTBEAT", "JOURNAL_SUFFIXES", "LATE", "METRIC", "METRICS", "MINIMISED_METRICS", "MODALITY", "OTDD_AFTER",
    "OTDD_BEFORE", "OTDD_CURVE", "OWNER_HOST", "OWNER_PID", "PARAM_SEED", "PARAM_TASK", "PEAK_MEM_MB",
    "RESULT_ATTRS", "SECONDS", "SECONDS_BY_STAGE", "SLOT", "SLURM_SUBMISSIONS", "SPEC", "STALE", "TEST_METRICS", "TEST_SCORE",
    "TRACEBACK", "TRAINABLE_PARAMS", "VAL_CURVE", "VAL_SCORE", "VERSIONS", "WORKER_PID", "check_study_name",
    "is_server_url", "is_sqlite_url", "journal_path", "sqlite_path",
]

# -- TrialResult fields (harness.TrialResult; the dict a trial function returns) ----------------
TEST_SCORE = "test_score"
VAL_SCORE = "val_score"
METRIC = "metric"
DIRECTION = "direction"
MODALITY = "modality"
OTDD_BEFORE = "otdd_before"
OTDD_AFTER = "otdd_after"
OTDD_CURVE = "otdd_curve"
VAL_CURVE = "val_curve"
BEST_EPOCH = "best_epoch"
SECONDS = "seconds"
"""In a TrialResult: seconds per stage (a dict). In trial attrs: the total (a float)."""
TRAINABLE_PARAMS = "trainable_params"
PEAK_MEM_MB = "peak_mem_mb"
DEVICE = "device"
CONFIG = "config"
VERSIONS = "versions"
DETAILS = "details"
ADAPTIVE_ROUND = "adaptive_round"
"""Study user attrs ``adaptive_round_<k>`` of an adaptive study: the seeds and cells look k opened, which
hypotheses were open and what was decided; the cells of every recorded round are the study's cells."""
TEST_METRICS = "test_metrics"
"""Inside ``details`` (and a key a ``trial_fn`` may return): every metric of the test split, name -> value;
those other than the trial's own ``metric`` are a study's secondary metrics."""
MINIMISED_METRICS = ("rel_l2",)
"""Metrics for which lower is better (every other metric: higher is better)."""
GIT_COMMIT = "git_commit"
"""Inside ``versions``: the commit of the checkout the trial ran from, when it ran from one."""

METRICS: dict[str, str] = {
    TEST_SCORE: "the task metric on the test split (ablation grids)",
    VAL_SCORE: "the best validation score (required with search:)",
    OTDD_BEFORE: "OTDD between embedded data and proxy before alignment",
    OTDD_AFTER: "OTDD after alignment",
}
"""Result fields a spec may name as ``metric`` (the trial's Optuna value)."""

RESULT_ATTRS = (OTDD_BEFORE, OTDD_AFTER, OTDD_CURVE, VAL_SCORE, TEST_SCORE, METRIC, DIRECTION, MODALITY,
                PEAK_MEM_MB, VERSIONS, BEST_EPOCH, TRAINABLE_PARAMS, DEVICE, DETAILS)
"""Result fields a study copies to trial user attrs as they are (``seconds`` and ``config`` are reshaped)."""

# -- trial params and user attrs a study writes ------------------------------------------------
PARAM_TASK = "task"
PARAM_SEED = "seed"
BASELINE = "baseline"
"""The trial param (and TrialConfig field) of a baseline cell: which classical baseline ran instead of ORCA."""
"""Every cell's trial params: the task, each factor path as written in the spec, the seed."""
CELL = "cell"
"""Canonical JSON of the cell's task, factor levels and seed."""
SLOT = "slot"
"""Index of the search trial within the cell (absent or 0 without ``search:``)."""
SECONDS_BY_STAGE = "seconds_by_stage"
HEARTBEAT = "heartbeat"
"""Unix time of the owner's last sign of life."""
OWNER_HOST = "owner_host"
OWNER_PID = "owner_pid"
"""The process that writes the attempt to storage."""
WORKER_PID = "worker_pid"
"""The process that runs the trial function."""
ATTEMPT = "attempt"
"""A unique token per attempt: a create interrupted by a dropped connection is found, not repeated."""
ERROR = "error"
TRACEBACK = "traceback"
STALE = "stale"
"""True on a FAIL attempt whose owner died or went silent (it does not count as a failure of the cell)."""
LATE = "late"
"""True on a COMPLETE copy of an attempt that finished after another process had marked it stale."""

# -- study user attrs --------------------------------------------------------------------------
SPEC = "spec"
"""The canonical spec dict; its presence marks a study (or a rewritten copy) as complete."""
FACTORS = "factors"
BASE_CONFIG = "base_config"
"""The resolved base TrialConfig, flat dotted path -> value, as it was when the study was created."""
CREATED_BY = "created_by"
ARTIFACT_DIR = "artifact_dir"
EXTENSION_COPY_COMPLETE = "extension_copy_complete"
SLURM_SUBMISSIONS = "slurm_submissions"
"""Job arrays ``orca-ablate submit`` sent to Slurm for the study: job id, array size, time, script."""

CHECKED_NAMES = frozenset({
    TEST_SCORE, VAL_SCORE, OTDD_BEFORE, OTDD_AFTER, OTDD_CURVE, VAL_CURVE, BEST_EPOCH, TRAINABLE_PARAMS,
    PEAK_MEM_MB, GIT_COMMIT, CELL, SLOT, SECONDS_BY_STAGE, HEARTBEAT, OWNER_HOST, OWNER_PID, WORKER_PID, ATTEMPT,
    STALE, LATE, TRACEBACK, BASE_CONFIG, CREATED_BY, ARTIFACT_DIR, EXTENSION_COPY_COMPLETE, SLURM_SUBMISSIONS,
    ADAPTIVE_ROUND,
})
"""The names no other product module may spell as a string literal. The generic ones (``metric``,
``direction``, ``config``, ``error``, ``seconds``, ``spec``, ``factors``, ...) are defined here and used
for attrs, but they are also spec keys and option names elsewhere, so the test leaves them out."""

# -- study names -------------------------------------------------------------------------------
STUDY_NAME_MAX = 128
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_study_name(name: str, where: str = "--study-name") -> str:
    """Return ``name`` when it may name a study; else raise ValueError naming the rule.

    Letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most
    128 characters: no path separators, no ``..`` to climb out of ``reports/``, no
    control characters (a study name becomes a directory name).
    """
    if (not isinstance(name, str) or not _STUDY_NAME.fullmatch(name) or ".." in name
            or len(name) > STUDY_NAME_MAX):
        raise ValueError(f"{where} {name!r}: a study name is letters, digits, '.', '_' or '-', starts with a "
                         f"letter or digit, has no '..' and at most {STUDY_NAME_MAX} characters "
                         "(e.g. embedder-epochs)")
    return name


# -- storage URLs ------------------------------------------------------------------------------
DEFAULT_STORAGE = "sqlite:///orca-ablate.db"
"""Default ``--storage``: a SQLite file in the working directory."""
JOURNAL_SUFFIXES = (".log", ".jsonl")
_JOURNAL_SCHEME = "journal:"
_SQLITE_SCHEME = "sqlite:///"


def journal_path(url: str) -> Path | None:
    """Return the file of a journal-storage URL, or None when ``url`` is not one.

    Forms: ``journal:///abs/path.log``, ``journal:relative/path.log``, or a plain
    path ending in ``.log`` or ``.jsonl``. Raises ValueError for ``journal:`` with no file.
    """
    if url.startswith(_JOURNAL_SCHEME):
        rest = url[len(_JOURNAL_SCHEME):]
        rest = rest[2:] if rest.startswith("//") else rest
        if not rest:
            raise ValueError(f"--storage {url!r}: name the file, e.g. journal:///abs/path/study.log")
        return Path(rest)
    if "://" not in url and url.endswith(JOURNAL_SUFFIXES):
        return Path(url)
    return None


def is_sqlite_url(url: str) -> bool:
    """Return whether ``url`` is a SQLite URL (``sqlite:///FILE.db``, or with a driver: ``sqlite+pysqlite``)."""
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """Return the file of a ``sqlite:///FILE`` URL (relative to the working directory), or None.

    None also for an in-memory database and for URLs that are not SQLite.
    """
    if not is_sqlite_url(url) or "://" not in url:
        return None
    rest = url.split("://", 1)[1]
    if not rest.startswith("/"):
        return None
    file = rest[1:].split("?", 1)[0]
    return Path(file) if file and file != ":memory:" else None


def is_server_url(url: str) -> bool:
    """Return whether ``url`` names a database server (PostgreSQL, ...) rather than a file."""
    return "://" in url and journal_path(url) is None and not is_sqlite_url(url)
