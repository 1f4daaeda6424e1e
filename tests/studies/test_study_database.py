"""Database-server plumbing without a server: masked URLs, error messages, retries that never record twice."""

from __future__ import annotations

import socket
from typing import Any

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError

from studies import StorageError, open_storage
from harness.contract import ATTEMPT as ATTEMPT_ATTR
from studies.storage._server import RetryingStorage, connection_error, is_transient, mask_text, mask_url

URL = "postgresql+psycopg://alice:s3cr3t-pw@db.example:5433/studies"


def test_mask_url_hides_the_password_only() -> None:
    assert mask_url(URL) == "postgresql+psycopg://alice:***@db.example:5433/studies"
    assert mask_url("postgresql://alice@db/x") == "postgresql://alice@db/x"
    assert mask_url("journal:///runs/s.log") == "journal:///runs/s.log"
    assert mask_url("sqlite:///a.db") == "sqlite:///a.db"
    assert mask_text(f"cannot reach {URL}; password s3cr3t-pw rejected", URL) == (
        "cannot reach postgresql+psycopg://alice:***@db.example:5433/studies; password *** rejected")


def _refused_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening, then closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("url", "message"), [
    ("postgres://alice:s3cr3t-pw@127.0.0.1/x", "unknown database URL scheme 'postgres'; expected postgresql://"),
    ("nosuchdb+driver://alice:s3cr3t-pw@127.0.0.1/x", "unknown database URL scheme 'nosuchdb+driver'"),
])
def test_bad_scheme_is_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(StorageError) as info:
        open_storage(url)
    assert message in str(info.value)
    assert "s3cr3t-pw" not in str(info.value) and "alice:***@" in str(info.value)


def test_refused_connection_is_explained_with_the_password_masked() -> None:
    port = _refused_port()
    with pytest.raises(StorageError) as info:
        open_storage(f"postgresql+psycopg://alice:s3cr3t-pw@127.0.0.1:{port}/studies")
    text = str(info.value)
    assert f"cannot connect to 127.0.0.1:{port}: connection refused; is the PostgreSQL server running" in text
    assert "s3cr3t-pw" not in text and "alice:***@" in text


@pytest.mark.parametrize(("server_said", "explained"), [
    ('connection failed: FATAL:  password authentication failed for user "alice"',
     "the server at db.example:5433 refused user 'alice': wrong user name or password"),
    ('connection failed: FATAL:  role "alice" does not exist',
     "the server at db.example:5433 refused user 'alice'"),
    ('connection failed: FATAL:  database "studies" does not exist',
     "database 'studies' does not exist on db.example:5433; create it first (createdb -h db.example -U alice "
     "studies)"),
    ("failed to resolve host 'db.example': Name or service not known", "cannot resolve host 'db.example'"),
    ("connection timeout expired", "no answer from db.example:5433 within 10 s"),
])
def test_connection_errors_are_classified(server_said: str, explained: str) -> None:
    error = OperationalError("SELECT 1", {}, Exception(server_said + " (password s3cr3t-pw)"))
    text = str(connection_error(URL, error))
    assert text.startswith(f"--storage postgresql+psycopg://alice:***@db.example:5433/studies: {explained}")
    assert "s3cr3t-pw" not in text


def test_transient_errors_are_told_apart() -> None:
    dropped = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
    wrapped = optuna.exceptions.StorageInternalError("commit failed")
    wrapped.__cause__ = dropped
    assert is_transient(dropped) and is_transient(wrapped)
    assert not is_transient(KeyError("trial"))
    assert not is_transient(UpdateFinishedTrialError("finished"))


class _Flaky:
    """An in-memory storage whose chosen calls drop the connection: before or after doing their work."""

    def __init__(self) -> None:
        self.inner = optuna.storages.InMemoryStorage()
        self.plan: dict[str, list[str]] = {}
        """method -> outcomes of its next calls: "before" (fail, nothing done), "after" (done, then fail)."""
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            outcome = self.plan.get(name, []).pop(0) if self.plan.get(name) else None
            if outcome == "before":
                raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))
            result = method(*args, **kwargs)
            if outcome == "after":
                raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
            return result
        return call


def _retrying(flaky: _Flaky, deadline: float = 5.0) -> RetryingStorage:
    return RetryingStorage(flaky, None, URL, deadline=deadline)  # type: ignore[arg-type]


def test_reads_and_idempotent_writes_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    flaky = _Flaky()
    storage = _retrying(flaky)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    flaky.plan = {"set_trial_user_attr": ["before", "after"], "get_all_trials": ["before"]}
    storage.set_trial_user_attr(trial._trial_id, "heartbeat", 1.0)
    assert flaky.calls["set_trial_user_attr"] == 3  # dropped before; committed then dropped; once more
    storage.set_trial_user_attr(trial._trial_id, "heartbeat", 2.0)
    assert storage.get_trial(trial._trial_id).user_attrs["heartbeat"] == 2.0
    assert len(storage.get_all_trials(study._study_id)) == 1
    assert "connection to postgresql+psycopg://alice:***@db.example:5433/studies lost" in caplog.text
    assert "s3cr3t-pw" not in caplog.text


def test_a_tell_whose_commit_went_through_is_not_written_twice() -> None:
    flaky = _Flaky()
    storage = _retrying(flaky)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    flaky.plan = {"set_trial_state_values": ["after"]}  # committed, but the client saw the connection drop
    assert storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.75]) is True
    assert flaky.calls["set_trial_state_values"] == 1  # re-read instead of telling again
    assert storage.get_trial(trial._trial_id).value == 0.75


def test_a_tell_after_another_process_finished_the_trial_still_fails() -> None:
    flaky = _Flaky()
    storage = _retrying(flaky)
    trial = optuna.create_study(storage=storage).ask()
    real = flaky.inner.set_trial_state_values

    def stale_meanwhile(trial_id: int, state: TrialState, values: Any = None) -> bool:
        real(trial_id, TrialState.FAIL)  # another host marked it stale while the connection was down
        raise OperationalError("UPDATE", {}, Exception("terminating connection due to administrator command"))

    flaky.inner.set_trial_state_values = stale_meanwhile  # type: ignore[method-assign]
    with pytest.raises(UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.5])
    assert storage.get_trial(trial._trial_id).state == TrialState.FAIL


def test_an_interrupted_create_is_found_by_its_attempt_token() -> None:
    flaky = _Flaky()
    storage = _retrying(flaky)
    study = optuna.create_study(storage=storage)
    template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={ATTEMPT_ATTR: "token-1"})
    flaky.plan = {"create_new_trial": ["after"]}
    trial_id = storage.create_new_trial(study._study_id, template_trial=template)
    assert len(storage.get_all_trials(study._study_id)) == 1
    assert storage.get_trial(trial_id).user_attrs[ATTEMPT_ATTR] == "token-1"


def test_retries_give_up_after_the_deadline_with_a_masked_error() -> None:
    flaky = _Flaky()
    storage = _retrying(flaky, deadline=0.3)
    study = optuna.create_study(storage=storage)
    flaky.plan = {"get_all_trials": ["before"] * 100}
    with pytest.raises(StorageError) as info:
        storage.get_all_trials(study._study_id)
    text = str(info.value)
    assert text.startswith("lost the connection to postgresql+psycopg://alice:***@db.example:5433/studies: "
                           "get_all_trials kept failing for")
    assert "s3cr3t-pw" not in text and "run the command again when the server is back" in text
