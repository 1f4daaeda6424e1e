"""Database servers (PostgreSQL): masked URLs, clear connection errors, retried storage calls.

Many workers on many hosts share one PostgreSQL study. Here:

- ``open_server_storage`` opens the URL with ``pool_pre_ping`` and a connect
  timeout, and turns a refused connection, an unknown database or rejected
  credentials into a one-line ``StorageError`` whose URL has its password masked;
- ``RetryingStorage`` retries every storage call that failed because the
  connection dropped (a server restart, a network blip) with exponential backoff,
  for up to ``RETRY_DEADLINE_S``. Writes that are not idempotent re-read before
  they retry: a state change whose commit went through before the connection
  dropped is not applied twice, and a trial created by an interrupted
  ``create_new_trial`` is found by its ``attempt`` token instead of created again.

The study lock and the one-transaction writes are in ``_rdb_direct``; the backend in ``backends/postgresql``.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from harness.contract import ATTEMPT

from ._errors import StorageError

if TYPE_CHECKING:
    from optuna.storages import BaseStorage, RDBStorage
    from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "RetryingStorage",
    "is_transient",
    "mask_text",
    "mask_url",
    "open_server_storage",
    "retry",
]

RETRY_DEADLINE_S = 300.0
"""How long a storage call is retried while the server is unreachable before the command gives up."""
RETRY_FIRST_DELAY_S = 0.1
RETRY_MAX_DELAY_S = 5.0
CONNECT_TIMEOUT_S = 10
"""libpq ``connect_timeout``: an unreachable host fails after this long instead of hanging."""

_log = logging.getLogger("studies.storage")
_T = TypeVar("_T")




# -- URLs and errors ----------------------------------------------------------------------------

def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (any other text is returned unchanged)."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - unparseable: mask whatever sits between "user:" and "@"
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def mask_text(text: str, url: str) -> str:
    """Return ``text`` with ``url`` masked and its password, wherever it appears, replaced by ``***``."""
    text = text.replace(url, mask_url(url))
    password = _password(url)
    return text.replace(password, "***") if password else text


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses
        match = re.search(r"://[^:/@]*:([^@/]*)@", url)
        return match.group(1) if match else None
    return str(password) if password else None


def _dbapi_message(exc: BaseException) -> str:
    """Return the driver's own message behind an SQLAlchemy error (first lines, no SQL, no links)."""
    inner = getattr(exc, "orig", None) or exc.__cause__ or exc
    text = str(inner).split("(Background on this error")[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) or type(inner).__name__


_PROBLEMS: tuple[tuple[str, str], ...] = (
    (r"password authentication failed|no password supplied|role \".*\" does not exist|authentication failed",
     "the server at {where} refused user {user!r}: wrong user name or password (give them in the URL, "
     "or in ~/.pgpass so that they stay out of the command line)"),
    (r"database \".*\" does not exist",
     "database {database!r} does not exist on {where}; create it first (createdb -h {host} -U {user} {database})"),
    (r"connection refused",
     "cannot connect to {where}: connection refused; is the PostgreSQL server running there and listening "
     "on TCP/IP (listen_addresses, port)?"),
    (r"could not translate host name|failed to resolve host|name or service not known|nodename nor servname",
     "cannot resolve host {host!r}; check the host name in the URL"),
    (r"timeout expired|timed out",
     "no answer from {where} within {timeout} s; check the host, the port and any firewall"),
)


def connection_error(url: str, exc: BaseException) -> StorageError:
    """Return a one-line StorageError explaining why ``url`` could not be opened (password masked)."""
    from sqlalchemy import exc as sa_exc

    shown = mask_url(url)
    if isinstance(exc, sa_exc.ArgumentError):  # NoSuchModuleError (an unknown scheme) is one
        scheme = url.split("://", 1)[0]
        return StorageError(f"--storage {shown}: unknown database URL scheme {scheme!r}; expected "
                            "postgresql://USER@HOST[:PORT]/DB (or postgresql+psycopg://...), sqlite:///FILE.db, "
                            "or a journal file (journal:///PATH.log)")
    if isinstance(exc, ImportError):
        return StorageError(f"--storage {shown}: the database driver is not installed ({exc}); for PostgreSQL "
                            "install psycopg[binary]")
    message = _dbapi_message(exc)
    explained = _explain(url, message)
    if explained:
        return StorageError(mask_text(f"--storage {shown}: {explained} (server said: {message})", url))
    return StorageError(mask_text(f"--storage {shown}: cannot open it ({type(exc).__name__}: {message})", url))


def _explain(url: str, message: str) -> str | None:
    """Return what to fix for a known, lasting cause of a connection error (see ``_PROBLEMS``), or None."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - no fields to explain with
        return None
    host, port = parsed.host or "localhost", parsed.port or 5432
    fields = {"host": host, "where": f"{host}:{port}", "user": parsed.username or "",
              "database": parsed.database or "", "timeout": CONNECT_TIMEOUT_S}
    for pattern, template in _PROBLEMS:
        if re.search(pattern, message, re.IGNORECASE):
            return template.format(**fields)
    return None


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` comes from a dropped connection or a (re)starting server: worth retrying."""
    from sqlalchemy import exc as sa_exc

    try:
        import psycopg
        driver_errors: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
    except ImportError:
        driver_errors = ()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sa_exc.OperationalError, sa_exc.InterfaceError, *driver_errors)):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ if current.__cause__ is not None else (
            None if current.__suppress_context__ else current.__context__)
    return False


def retry(call: Callable[[], _T], *, what: str, url: str, deadline: float = RETRY_DEADLINE_S,
          interrupted: Callable[[], None] | None = None) -> _T:
    """Return ``call()``, retried with exponential backoff while it fails with a transient error.

    ``interrupted`` runs after each transient failure (to note that the next try must
    re-read first). Raises StorageError once ``deadline`` seconds have passed.
    """
    start = time.monotonic()
    delay = RETRY_FIRST_DELAY_S
    failures = 0
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            failures += 1
            waited = time.monotonic() - start
            reason = mask_text(_dbapi_message(exc), url)
            if waited >= deadline:
                raise StorageError(f"lost the connection to {mask_url(url)}: {what} kept failing for "
                                   f"{waited:.0f} s ({reason}); the study is safe: run the command again "
                                   "when the server is back") from None
            if failures == 1:
                _log.warning("%s: connection to %s lost (%s); retrying for up to %.0f s", what, mask_url(url),
                             reason, deadline)
            if interrupted is not None:
                interrupted()
            time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - waited)))
            delay = min(2 * delay, RETRY_MAX_DELAY_S)


# -- opening ------------------------------------------------------------------------------------

def open_server_storage(url: str) -> RetryingStorage:
    """Return the storage of a database server URL, with retries; raise StorageError when it cannot connect."""
    from optuna.storages import RDBStorage, get_storage
    from sqlalchemy.engine import make_url

    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - reported with the URL masked
        raise connection_error(url, exc) from None
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}

    def connect() -> RDBStorage:
        try:
            return RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure to connect becomes one clear line
            if is_transient(exc) and _explain(url, _dbapi_message(exc)) is None:
                raise  # e.g. the server is starting up or ended the session: try again
            raise connection_error(url, exc) from None

    rdb = retry(connect, what="opening the storage", url=url)
    _register()
    return RetryingStorage(get_storage(rdb), rdb, url)


class RetryingStorage:
    """An Optuna storage that retries calls interrupted by a dropped connection (see the module docstring).

    Wraps Optuna's cached RDB storage; ``rdb`` is the RDBStorage underneath (for the
    engine). ``open_server_storage`` registers it as a virtual ``BaseStorage``
    subclass, so Optuna and optuna-dashboard accept it wherever they take a storage.
    """

    def __init__(self, storage: BaseStorage, rdb: RDBStorage, url: str,
                 deadline: float = RETRY_DEADLINE_S) -> None:
        self._storage = storage
        self.rdb = rdb
        self.url = url
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"RetryingStorage({mask_url(self.url)!r})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_storage":
            raise AttributeError(name)
        return getattr(self._storage, name)

    def _retry(self, what: str, call: Callable[[], _T], interrupted: Callable[[], None] | None = None) -> _T:
        return retry(call, what=what, url=self.url, deadline=self.deadline, interrupted=interrupted)

    # Calls that are retried as they are (reads, and writes that are idempotent or checked by Optuna) are
    # added below the class from _RETRIED; these two re-read first when an interrupted call may have committed.
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        token = template_trial.user_attrs.get(ATTEMPT) if template_trial is not None else None
        state = {"interrupted": False}

        def call() -> int:
            if state["interrupted"] and token is not None:
                for trial in self._storage.get_all_trials(study_id, deepcopy=False):
                    if trial.user_attrs.get(ATTEMPT) == token:
                        return trial._trial_id  # the interrupted create had committed
            return self._storage.create_new_trial(study_id, template_trial)

        return self._retry("create_new_trial", call, lambda: state.update(interrupted=True))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        from optuna.exceptions import UpdateFinishedTrialError

        flags = {"interrupted": False}

        def call() -> bool:
            if flags["interrupted"]:
                trial = self._storage.get_trial(trial_id)
                if trial.state.is_finished():
                    same = values is None or list(trial.values or []) == [float(v) for v in values]
                    if trial.state == state and same:
                        return True  # the interrupted call had committed: do not write it twice
                    raise UpdateFinishedTrialError(f"trial {trial_id} is already {trial.state.name}")
            return self._storage.set_trial_state_values(trial_id, state, values)

        return self._retry("set_trial_state_values", call, lambda: flags.update(interrupted=True))

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self.get_trial(trial_id).number

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        trial = self.get_trial(trial_id)
        return float(trial.distributions[param_name].to_internal_repr(trial.params[param_name]))

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self.get_trial(trial_id).params

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self.get_trial(trial_id).user_attrs

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self.get_trial(trial_id).system_attrs

    def remove_session(self) -> None:
        self._storage.remove_session()

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self._storage.check_trial_is_updatable(trial_id, trial_state)


_RETRIED = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "set_trial_param", "get_trial_id_from_study_id_trial_number", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials", "get_best_trial",
)
"""BaseStorage methods that RetryingStorage retries by calling the wrapped storage's method again."""


def _retried(name: str) -> Callable[..., Any]:
    """Return a RetryingStorage method that calls the wrapped storage's ``name``, retried."""
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._retry(name, lambda: getattr(self._storage, name)(*args, **kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``BaseStorage.{name}``, retried across dropped connections."
    return method


for _name in _RETRIED:
    setattr(RetryingStorage, _name, _retried(_name))


def _register() -> None:
    """Make RetryingStorage a virtual BaseStorage subclass (Optuna is imported lazily, so not at class creation)."""
    from optuna.storages import BaseStorage

    BaseStorage.register(RetryingStorage)
