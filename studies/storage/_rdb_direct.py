"""Direct SQL beside Optuna's RDB storage API: the study lock, one-transaction writes, one-query reads.

- ``advisory_lock`` (behind ``_locks.study_lock``) serialises claiming and finishing a study's cells across every
  process and host with a PostgreSQL advisory lock keyed by the study id;
- ``write_trial`` and ``create_running_trial`` write a trial's user attrs (one
  upsert), intermediate values and params in one transaction. Optuna's RDB storage
  commits every attribute on its own: with PostgreSQL committing (and fsyncing)
  ~20 times per trial, that was most of a trial's storage time;
- ``complete_attempt`` finds a cell's COMPLETE attempt with one query.

They use Optuna 5's tables and the private helpers its RDB storage uses itself,
checked for: when they are missing (or the storage is a journal file), callers fall
back to Optuna's public API.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from harness.contract import ATTEMPT, CELL, SLOT

from ._server import RETRY_DEADLINE_S, RetryingStorage, is_transient, retry

__all__ = ["LockLost", "batched", "complete_attempt", "create_running_trial", "advisory_lock", "write_trial"]

LOCK_TIMEOUT_S = 120
"""A process waiting this long for the study lock gives up and retries (the holder may be stuck)."""
LOCK_CLASS = 0x6F726361
"""First key of the advisory lock (b"orca"); the second is the study id. Advisory locks are per database."""

_T = TypeVar("_T")


class LockLost(RuntimeError):
    """The connection holding the study lock dropped while the lock was held; redo the locked step."""


# -- the study lock -----------------------------------------------------------------------------

@contextlib.contextmanager
def advisory_lock(storage: Any, study_id: int) -> Iterator[bool]:
    """Hold the study's claim lock for the block; yield True when it excludes every other process and host.

    On PostgreSQL this is ``pg_advisory_xact_lock(LOCK_CLASS, study_id)`` in a
    transaction of its own connection, released when the block ends (or when the
    process or its connection dies). Other storages yield False at once: callers
    then fall back to a check after claiming. Raises LockLost when the connection
    holding the lock dropped during the block: the block's work was not protected.
    """
    rdb = getattr(storage, "rdb", None)
    if rdb is None or rdb.engine.dialect.name != "postgresql":
        yield False
        return
    from sqlalchemy import text

    url = getattr(storage, "url", str(rdb.url))

    def acquire() -> Any:
        connection = rdb.engine.connect()
        try:
            connection.execute(text("SELECT pg_advisory_xact_lock(:a, :b) "
                                    "FROM (SELECT set_config('lock_timeout', :timeout, true)) AS timeout"),
                               {"timeout": f"{LOCK_TIMEOUT_S}s", "a": LOCK_CLASS, "b": study_id})
        except BaseException:
            _close(connection)
            raise
        return connection

    connection = retry(acquire, what="study lock", url=url, deadline=getattr(storage, "deadline",
                                                                              RETRY_DEADLINE_S))
    try:
        yield True
        try:
            connection.execute(text("SELECT 1"))  # still the session that holds the lock?
        except Exception as exc:
            if is_transient(exc):
                raise LockLost("the connection holding the study lock dropped") from None
            raise
    finally:
        _close(connection)


def _close(connection: Any) -> None:
    try:
        connection.rollback()  # ends the transaction, releasing the advisory lock
        connection.close()
    except Exception:  # noqa: BLE001 - a dead connection: the server released the lock with the session
        with contextlib.suppress(Exception):
            connection.invalidate()


# -- batched writes -----------------------------------------------------------------------------
# Optuna's RDB storage writes each user attribute with two statements and commits it on its own.
# These write a trial's attributes with one upsert, in one transaction, through the same tables and
# the same private helpers Optuna uses (checked for; absent, callers fall back to the public API).

def _rdb_of(storage: Any) -> Any:
    """Return the RDBStorage under ``storage`` (retrying, cached or plain), or None."""
    from optuna.storages import RDBStorage

    for candidate in (getattr(storage, "rdb", None), getattr(storage, "_backend", None), storage):
        if isinstance(candidate, RDBStorage):
            return candidate
    return None


def _batch_rdb(storage: Any) -> Any:
    """Return the RDBStorage under ``storage`` when batched writes work on it (PostgreSQL, SQLite), else None."""
    import sqlite3

    rdb = _rdb_of(storage)
    needed = ("_set_trial_param_without_commit", "_set_trial_intermediate_value_without_commit",
              "check_trial_is_updatable", "scoped_session")
    if rdb is None or not all(hasattr(rdb, name) for name in needed):
        return None
    if rdb.engine.name == "sqlite" and sqlite3.sqlite_version_info < (3, 24, 0):
        return None  # no upsert
    return rdb if rdb.engine.name in ("postgresql", "sqlite") else None


def _upsert_user_attrs(rdb: Any, session: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
    import json

    from optuna.storages._rdb import models

    if not attrs:
        return
    if rdb.engine.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = models.TrialUserAttributeModel
    statement = insert(table).values([{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                      for key, value in attrs.items()])
    session.execute(statement.on_conflict_do_update(index_elements=[table.trial_id, table.key],
                                                    set_={"value_json": statement.excluded.value_json}))


def _run(storage: Any, what: str, call: Callable[[], _T], interrupted: Callable[[], None] | None = None) -> _T:
    if isinstance(storage, RetryingStorage):
        return storage._retry(what, call, interrupted)
    return call()


def write_trial(storage: Any, trial_id: int, user_attrs: Mapping[str, Any],
                intermediate_values: Mapping[int, float]) -> bool:
    """Write user attrs and intermediate values of a RUNNING trial in one transaction; return whether it did.

    Returns False when the storage is not PostgreSQL or SQLite through Optuna's RDB
    storage (a journal file): the caller then writes them one by one. Raises
    UpdateFinishedTrialError, like Optuna, when the trial is finished.
    """
    rdb = _batch_rdb(storage)
    if rdb is None:
        return False
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    def call() -> None:
        with _create_scoped_session(rdb.scoped_session) as session:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            rdb.check_trial_is_updatable(trial_id, trial.state)
            for step, value in sorted(intermediate_values.items()):
                rdb._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
            _upsert_user_attrs(rdb, session, trial_id, user_attrs)

    _run(storage, "write_trial", call)
    return True


def create_running_trial(storage: Any, study_id: int, params: Mapping[str, Any],
                         distributions: Mapping[str, Any], user_attrs: Mapping[str, Any]) -> int | None:
    """Create a RUNNING trial with its params and user attrs in one transaction; return its id.

    Returns None when batched writes do not apply (the caller uses
    ``create_new_trial``). Numbers the trial as Optuna does, under a row lock on the
    study. A create interrupted by a dropped connection is looked up by the
    ``attempt`` token of ``user_attrs`` before it is tried again.
    """
    rdb = _batch_rdb(storage)
    if rdb is None:
        return None
    from datetime import datetime

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    token = user_attrs.get(ATTEMPT)
    flags = {"interrupted": False}

    def call() -> int:
        if flags["interrupted"] and token is not None:
            found = _find_attempt(rdb, study_id, token)
            if found is not None:
                return found  # the interrupted create had committed
        with _create_scoped_session(rdb.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
            trial = models.TrialModel(study_id=study_id, number=None, state=TrialState.RUNNING,
                                      datetime_start=datetime.now())
            session.add(trial)
            session.flush()
            trial_id = int(trial.trial_id)
            for name, value in params.items():
                distribution = distributions[name]
                # The spec was checked against the study's own, so Optuna's per-param lookup of an
                # earlier trial's distribution (one query each) is skipped.
                rdb._set_trial_param_without_commit(session, trial_id, name, distribution.to_internal_repr(value),
                                                    distribution, distribution)
            _upsert_user_attrs(rdb, session, trial_id, user_attrs)
            trial.number = trial.count_past_trials(session)
        return trial_id

    return _run(storage, "create_running_trial", call, lambda: flags.update(interrupted=True))


def batched(storage: Any) -> bool:
    """Return whether the batched writes and queries of this module apply (PostgreSQL or SQLite via Optuna's RDB)."""
    return _batch_rdb(storage) is not None


def complete_attempt(storage: Any, study_id: int, cell_key: str, slot: int) -> int | None:
    """Return the number of a COMPLETE attempt of the cell, or None; one query (requires :func:`batched`)."""
    import json

    rdb = _batch_rdb(storage)
    if rdb is None:
        raise ValueError("complete_attempt needs PostgreSQL or SQLite through Optuna's RDB storage")
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState
    from sqlalchemy import and_, func
    from sqlalchemy.orm import aliased

    attrs = models.TrialUserAttributeModel
    cell, slots = aliased(attrs), aliased(attrs)

    def call() -> int | None:
        with _create_scoped_session(rdb.scoped_session) as session:
            row = (session.query(models.TrialModel.number)
                   .join(cell, and_(cell.trial_id == models.TrialModel.trial_id, cell.key == CELL))
                   .outerjoin(slots, and_(slots.trial_id == models.TrialModel.trial_id, slots.key == SLOT))
                   .filter(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.COMPLETE,
                           cell.value_json == json.dumps(cell_key),
                           func.coalesce(slots.value_json, "0") == json.dumps(slot))
                   .order_by(models.TrialModel.number).first())
        return int(row[0]) if row is not None else None

    return _run(storage, "complete_attempt", call)


def _find_attempt(rdb: Any, study_id: int, token: str) -> int | None:
    """Return the id of the study's trial whose ``attempt`` user attr is ``token``, or None."""
    import json

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    table = models.TrialUserAttributeModel
    with _create_scoped_session(rdb.scoped_session) as session:
        row = (session.query(table.trial_id).join(models.TrialModel)
               .filter(models.TrialModel.study_id == study_id, table.key == ATTEMPT,
                       table.value_json == json.dumps(token)).first())
    return int(row[0]) if row is not None else None
