"""``orca-ablate dashboard``: the artifact directory, the HTTP API served in-process, the page in a headless browser."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

import studies.cli
from studies import StorageError, StudySpec, open_storage, run_study
from studies.storage._dashboard import open_dashboard

FAKE = "studies._testing:fake_trial"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a thread; yield its base URL."""
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def _get_json(url: str) -> Any:
    return json.loads(_get(url))


def _study(url: str, small: dict[str, Any], tmp_path: Path, name: str = "dash-ablation") -> StudySpec:
    small.update(name=name, tasks=["digits"], seeds=[0])
    spec = StudySpec.from_dict(small)  # 4 cells
    report = run_study(spec, storage=url, inline=True, trial_fn=FAKE, progress=False,
                       artifact_dir=str(tmp_path / "artifacts"))
    assert report.exit_code == 0
    return spec


@pytest.mark.postgres
def test_api_serves_the_study_its_trials_and_artifacts(pg_url: str, tmp_path: Path, fake_env: Path,
                                                        small: dict[str, Any]) -> None:
    spec = _study(pg_url, small, tmp_path)
    board = open_dashboard(pg_url)  # the artifact directory comes from the study
    assert board.artifact_dir == tmp_path / "artifacts"
    study = optuna.load_study(study_name=spec.name, storage=open_storage(pg_url))
    table = tmp_path / "tests.csv"
    table.write_text("claim,p_val\nproxy,0.5\n")
    artifact_id = upload_artifact(artifact_store=board.artifact_store(), file_path=str(table), study_or_trial=study)
    with _serve(board.wsgi()) as base:
        assert _get_json(f"{base}/api/meta")["artifact_is_available"] is True
        listing = _get_json(f"{base}/api/studies")["study_summaries"]
        entry = next(s for s in listing if s["study_name"] == spec.name)
        detail = _get_json(f"{base}/api/studies/{entry['study_id']}")
        assert detail["name"] == spec.name and len(detail["trials"]) == 4
        assert {t["state"] for t in detail["trials"]} == {"Complete"}
        for trial in detail["trials"]:
            assert {p["name"] for p in trial["params"]} == {"task", "seed", "embedder.epochs", "finetune.freeze"}
            attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
            assert {"cell", "config", "test_score", "otdd_before", "owner_host"} <= set(attrs)
        study_attrs = {a["key"]: a["value"] for a in detail["user_attrs"]}
        assert study_attrs["artifact_dir"] == str(tmp_path / "artifacts")
        assert [a["artifact_id"] for a in detail["artifacts"]] == [artifact_id]
        assert _get(f"{base}/artifacts/{entry['study_id']}/{artifact_id}") == table.read_bytes()


@pytest.mark.postgres
@pytest.mark.slow  # starts chromium
def test_page_shows_the_study_and_its_factors_in_a_browser(pg_url: str, tmp_path: Path, fake_env: Path,
                                                           small: dict[str, Any], require: Any) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert browser is not None
    spec = _study(pg_url, small, tmp_path)
    board = open_dashboard(pg_url)
    with _serve(board.wsgi()) as base:
        study_id = next(s["study_id"] for s in _get_json(f"{base}/api/studies")["study_summaries"]
                        if s["study_name"] == spec.name)
        listing = _dump_dom(browser, f"{base}/dashboard", tmp_path)
        detail = _dump_dom(browser, f"{base}/dashboard/studies/{study_id}", tmp_path)
    assert spec.name in listing  # the study list, rendered by the page's scripts
    assert spec.name in detail and "embedder.epochs" in detail and "finetune.freeze" in detail


def _dump_dom(browser: str, url: str, tmp_path: Path) -> str:
    """Return the DOM of ``url`` after its scripts ran (10 s of virtual time) in headless chromium."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_artifact_dir_defaults_beside_a_file_and_is_recorded(tmp_path: Path, fake_env: Path,
                                                             small: dict[str, Any]) -> None:
    small.update(tasks=["digits"], seeds=[0], factors={})
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    report = run_study(StudySpec.from_dict(small), storage=url, inline=True, trial_fn=FAKE, progress=False)
    assert report.artifact_dir == str(tmp_path / "runs-artifacts")
    assert f"artifacts (reports, figures): {tmp_path / 'runs-artifacts'}" in report.summary()
    study = optuna.load_study(study_name="small", storage=open_storage(url))
    assert study.user_attrs["artifact_dir"] == str(tmp_path / "runs-artifacts")
    board = open_dashboard(url)
    assert board.artifact_dir == tmp_path / "runs-artifacts" and board.recorded_in == []
    board.artifact_store()
    assert (tmp_path / "runs-artifacts").is_dir()
    journal = f"journal:///{tmp_path / 'other.log'}"
    run_study(StudySpec.from_dict(small), storage=journal, workers=0, progress=False)
    assert open_dashboard(journal).artifact_dir == tmp_path / "other-artifacts"


@pytest.mark.postgres
def test_postgres_dashboard_works_without_artifacts_and_records_a_store_given_once(
        pg_url: str, tmp_path: Path, fake_env: Path, small: dict[str, Any]) -> None:
    small.update(tasks=["digits"], seeds=[0], factors={})
    report = run_study(StudySpec.from_dict(small), storage=pg_url, workers=0, progress=False)
    assert report.artifact_dir is None
    plain = open_dashboard(pg_url)  # monitoring just works; artifacts are a bonus
    assert plain.artifact_dir is None and plain.artifact_store() is None and plain.recorded_in == []
    assert len(plain.notes) == 1 and "attach one with --artifact-dir DIR" in plain.notes[0]
    assert plain.wsgi() is not None
    board = open_dashboard(pg_url, artifact_dir=tmp_path / "shared")
    assert board.recorded_in == ["small"]
    assert open_dashboard(pg_url).artifact_dir == tmp_path / "shared"  # recorded: found next time
    again = run_study(StudySpec.from_dict(small), storage=pg_url, workers=0, progress=False)
    assert again.artifact_dir == str(tmp_path / "shared")


def test_dashboard_command_listens_on_loopback_and_warns_otherwise(
        tmp_path: Path, fake_env: Path, small: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import optuna_dashboard

    small.update(tasks=["digits"], seeds=[0], factors={})
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run_study(StudySpec.from_dict(small), storage=url, workers=0, progress=False)
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kwargs: calls.append(kwargs))
    assert studies.cli.main(["dashboard", "--storage", url, "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert calls[0]["host"] == "127.0.0.1" and calls[0]["port"] == 8123
    store = calls[0]["artifact_store"]
    assert isinstance(store, FileSystemArtifactStore) and Path(store._base_path) == tmp_path / "runs-artifacts"
    assert "at http://127.0.0.1:8123/dashboard" in err and "warning" not in err
    assert studies.cli.main(["dashboard", "--storage", url, "--host", "0.0.0.0"]) == 0
    err = capsys.readouterr().err
    assert calls[1]["host"] == "0.0.0.0"
    assert "warning: --host 0.0.0.0: the dashboard has no authentication" in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # a subprocess
def test_dashboard_command_serves_until_interrupted(tmp_path: Path, fake_env: Path, small: dict[str, Any],
                                                    cli_env: dict[str, str]) -> None:
    small.update(tasks=["digits"], seeds=[0], factors={})
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run_study(StudySpec.from_dict(small), storage=url, inline=True, trial_fn=FAKE, progress=False)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "studies.cli", "dashboard", "--storage", url, "--port",
                               str(port)], env=cli_env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                meta = _get_json(f"http://127.0.0.1:{port}/api/meta")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        assert meta["artifact_is_available"] is True
        names = [s["study_name"] for s in _get_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]]
        assert names == ["small"]
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    assert f"at http://127.0.0.1:{port}/dashboard" in err
