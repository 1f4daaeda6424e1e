"""Local worker processes: run trial functions, talk to the parent over pipes, never to storage.

Each worker is a ``spawn`` process with one duplex pipe. The parent sends
``(job_id, config_dict)``; the worker answers ``("epoch", job_id, epoch, score)``
after each fine-tuning epoch, then ``("done", job_id, result_dict, seconds)`` or
``("error", job_id, message, traceback, seconds)``. Only the parent writes the
storage, so K workers never contend for a SQLite file. A worker exits when its
parent is gone (a watchdog thread polls the parent pid), so killing a run with
SIGKILL does not leave trials running unobserved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.config import TrialConfig
from harness.contract import DETAILS

from ..spec import DEFAULT_TRIAL_FN, StudySpec
from ._gpus import GPU_ENV

__all__ = ["DEFAULT_TRIAL_FN", "InlinePool", "TrialFn", "WorkerPool", "call_trial", "checkpoint_dir_for",
           "cpu_cores", "resolve_trial_fn", "takes_checkpoints", "trial_fn_for"]

TRIAL_FN_ENV = "ORCA_ABLATE_TRIAL_FN"
"""Testing hook: ``module:function`` that replaces the trial function of any spec, its names unchanged
(a harness spec's function then gets TrialConfigs). ``run --trial-fn`` is the user's option: it sets
the spec's ``trial_fn:``, whose function gets plain dicts."""
WATCHDOG_INTERVAL_S = 1.0


class TrialFn(Protocol):
    """A trial function: the cell's settings (a TrialConfig, or a plain dict with ``trial_fn:``) and an
    ``on_epoch(epoch, val_score)`` callback; returns a TrialResult or a dict with at least the spec's metric."""

    def __call__(self, config: Any, on_epoch: Callable[[int, float], None] | None = None) -> Any: ...


def trial_fn_for(spec: StudySpec, given: str | TrialFn | None = None) -> str | TrialFn:
    """Return the function that runs ``spec``'s cells: ``given``, else ``$ORCA_ABLATE_TRIAL_FN``, else the spec's."""
    return given or os.environ.get(TRIAL_FN_ENV) or spec.trial_fn or DEFAULT_TRIAL_FN


def call_trial(fn: TrialFn, settings: Mapping[str, Any], plain: bool, **kwargs: Any) -> Any:
    """Run ``fn`` on a cell's settings: a plain dict copy (``plain``, a ``trial_fn:`` spec) or its TrialConfig."""
    return fn(dict(settings) if plain else TrialConfig.from_dict(settings), **kwargs)


def resolve_trial_fn(spec: str | TrialFn) -> TrialFn:
    """Return the trial function named ``module:function`` (or the callable itself).

    The module is imported as usual, or else from the working directory (a ``trials.py``
    beside the spec runs as ``--trial-fn trials:run``).
    """
    if callable(spec):
        return spec
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"trial function {spec!r}: expected module:function, e.g. {DEFAULT_TRIAL_FN}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or os.getcwd() in sys.path:
            raise
        sys.path.append(os.getcwd())
        obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"trial function {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def takes_checkpoints(fn: Callable[..., Any]) -> bool:
    """Return whether a trial function accepts ``checkpoint_dir`` (``harness.run_trial`` does)."""
    try:
        return "checkpoint_dir" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def checkpoint_dir_for(study_name: str, cell_key: str, slot: int) -> str:
    """Return this host's folder for the fine-tuning checkpoints of one cell (shared by its attempts).

    A re-run of a killed cell on this host resumes from it (``harness.run_trial``); run_trial empties
    it when the trial completes. Under ``$ORCA_ABLATE_CACHE/checkpoints`` (default ``~/.cache/orca-ablate``).
    """
    from harness.paths import cache_dir

    digest = hashlib.sha256(f"{study_name}\n{cell_key}\n{slot}".encode()).hexdigest()[:20]
    return str(cache_dir() / "checkpoints" / digest)


def cpu_cores() -> int:
    """Return the number of CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def result_dict(result: Any) -> dict[str, Any]:
    """Return a TrialResult (or a dict with its fields) as a plain dict."""
    if isinstance(result, Mapping):
        return dict(result)
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError(f"the trial function returned {type(result).__name__}; expected a TrialResult or a dict")


# -- the worker side ----------------------------------------------------------------------

def worker_main(conn: multiprocessing.connection.Connection, trial_fn: str | TrialFn, threads: int,
                parent_pid: int, gpu: str | None = None, plain: bool = False) -> None:
    """Serve jobs from the parent until it sends None, closes the pipe, or dies; ``gpu``: this worker's device.

    ``plain``: the trial function gets each cell's settings as a dict (a ``trial_fn:`` spec), not a TrialConfig.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    _watch_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # before torch is imported, so its pools start at this size
    if gpu is not None:
        os.environ[GPU_ENV] = gpu  # before torch is imported: this worker sees its one GPU as cuda:0
    try:
        fn = resolve_trial_fn(trial_fn)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the run
        conn.send(("fatal", f"cannot load the trial function {trial_fn!r}: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        job_id, config, checkpoint_dir = message
        conn.send(_run_job(fn, job_id, config, conn, threads, gpu, checkpoint_dir, plain))


class _Sender(Protocol):
    def send(self, obj: Any) -> None: ...


def _run_job(fn: TrialFn, job_id: int, config: Mapping[str, Any], conn: _Sender, threads: int | None,
             gpu: str | None = None, checkpoint_dir: str | None = None, plain: bool = False) -> tuple[Any, ...]:
    torch = sys.modules.get("torch")
    if threads is not None and torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()

    def on_epoch(epoch: int, score: float) -> None:
        conn.send(("epoch", job_id, int(epoch), float(score)))

    try:
        extra = {"checkpoint_dir": checkpoint_dir} if checkpoint_dir and takes_checkpoints(fn) else {}
        result = result_dict(call_trial(fn, config, plain, on_epoch=on_epoch, **extra))
        if gpu is not None:  # which physical GPU "cuda:0" was
            result[DETAILS] = {**(result.get(DETAILS) or {}), GPU_ENV: gpu}
    except Exception as exc:  # noqa: BLE001 - any failure of a trial is recorded on its attempt
        message = f"{type(exc).__name__}: {exc}"
        return ("error", job_id, message, traceback.format_exc(limit=-10), time.perf_counter() - start)
    return ("done", job_id, result, time.perf_counter() - start)


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_INTERVAL_S)
            if os.getppid() != parent_pid:
                os._exit(3)  # the parent is gone: nobody would record this trial

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


# -- the parent side ----------------------------------------------------------------------

@dataclass
class Worker:
    """One worker process, its pipe, and the job it is running (None when idle)."""

    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    job: int | None = None
    ready: bool = False
    """True once the worker has imported the trial function."""
    gpu: str | None = None
    """The GPU the worker process sees (``CUDA_VISIBLE_DEVICES``), or None."""

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@dataclass(frozen=True)
class Event:
    """Something a worker reported: ``epoch``, ``done``, ``error``, ``died`` or ``fatal``."""

    kind: str
    worker: Worker | InlineWorker
    job: int | None
    payload: tuple[Any, ...] = ()


class WorkerPool:
    """K spawn processes running trial functions; the parent multiplexes their pipes."""

    def __init__(self, size: int, trial_fn: str | TrialFn, threads: int,
                 gpus: Sequence[str | None] | None = None, plain: bool = False) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._trial_fn = trial_fn
        self._threads = threads
        self._plain = plain
        self.workers = [self._spawn(gpu) for gpu in (gpus if gpus is not None else [None] * size)]

    def _spawn(self, gpu: str | None) -> Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=worker_main, name="orca-ablate-worker",
                                    args=(child_end, self._trial_fn, self._threads, os.getpid(), gpu, self._plain))
        process.start()
        child_end.close()
        return Worker(process, parent_end, gpu=gpu)

    def idle(self) -> list[Worker]:
        """Return the workers that are ready and without a job."""
        return [w for w in self.workers if w.ready and w.job is None]

    def submit(self, worker: Worker, job: int, config: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
        """Send a job to an idle worker (``checkpoint_dir``: the cell's folder for fine-tuning checkpoints)."""
        assert worker.job is None
        worker.job = job
        try:
            worker.conn.send((job, dict(config), checkpoint_dir))
        except OSError:
            pass  # the worker died; wait() reports it with this job

    def wait(self, timeout: float) -> list[Event]:
        """Return the events of the next ``timeout`` seconds (empty when nothing happened)."""
        waitables: list[Any] = [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers]
        ready = set(multiprocessing.connection.wait(waitables, timeout))
        events: list[Event] = []
        for worker in list(self.workers):
            if worker.conn in ready:
                events += self._drain(worker)
            if worker.process.sentinel in ready or not worker.process.is_alive():
                events += self._drain(worker)
                worker.process.join(timeout=5)
                events.append(Event("died", worker, worker.job, (worker.process.exitcode,)))
                self._replace(worker)
        return events

    def _drain(self, worker: Worker) -> list[Event]:
        events = []
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                kind = message[0]
                if kind == "ready":
                    worker.ready = True
                    continue
                if kind == "fatal":
                    events.append(Event("fatal", worker, None, tuple(message[1:])))
                    continue
                events.append(Event(kind, worker, message[1], tuple(message[2:])))
                if kind in ("done", "error"):
                    worker.job = None
        except (EOFError, OSError):
            pass  # the worker died; its sentinel reports it
        return events

    def _replace(self, worker: Worker) -> None:
        worker.conn.close()
        self.workers[self.workers.index(worker)] = self._spawn(worker.gpu)  # the same GPU slot

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker: politely (finish, then exit), or at once with ``kill``."""
        for worker in self.workers:
            if kill:
                worker.process.kill()
            else:
                try:
                    worker.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for worker in self.workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers = []


@dataclass
class InlineWorker:
    """The one worker of an InlinePool: a thread of this process."""

    pid: int
    job: int | None = None
    ready: bool = True


class InlinePool:
    """Runs trials one at a time in a thread of this process (``workers=0``): for debugging and tests.

    The parent's loop is unchanged and stays the only storage writer; the trial
    thread reports through a queue. No process isolation: a trial that crashes
    the interpreter stops the run.
    """

    def __init__(self, trial_fn: str | TrialFn, plain: bool = False) -> None:
        self._fn = resolve_trial_fn(trial_fn)
        self._plain = plain
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.workers = [InlineWorker(os.getpid())]

    def idle(self) -> list[InlineWorker]:
        """Return the worker when it has no job."""
        return [w for w in self.workers if w.job is None]

    def submit(self, worker: InlineWorker, job: int, config: Mapping[str, Any], checkpoint_dir: str | None = None) -> None:
        """Start a job in a new thread."""
        assert worker.job is None
        worker.job = job
        sender = _QueueSender(self._events)
        thread = threading.Thread(target=lambda: self._events.put(_run_job(self._fn, job, dict(config), sender, None,
                                                                           checkpoint_dir=checkpoint_dir,
                                                                           plain=self._plain)),
                                  name=f"orca-ablate-trial-{job}", daemon=True)
        thread.start()

    def wait(self, timeout: float) -> list[Event]:
        """Return the events of the next ``timeout`` seconds."""
        try:
            messages = [self._events.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self._events.get_nowait())
            except queue.Empty:
                break
        worker = self.workers[0]
        events = []
        for message in messages:
            events.append(Event(message[0], worker, message[1], tuple(message[2:])))
            if message[0] in ("done", "error"):
                worker.job = None
        return events

    def close(self, *, kill: bool = False) -> None:
        """Nothing to stop: a running trial thread is a daemon and ends with the process."""


@dataclass(frozen=True)
class _QueueSender:
    events: queue.Queue[tuple[Any, ...]]

    def send(self, obj: Any) -> None:
        self.events.put(obj)
