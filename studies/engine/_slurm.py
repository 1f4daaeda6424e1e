"""Slurm job arrays of ``orca-ablate worker`` processes: the sbatch script, submitting it, reading its state.

A generated sbatch script rather than submitit: the job is the same
``orca-ablate worker`` command a user runs by hand (no pickled function to
trust on the compute nodes, nothing to install there but orca-ablate), the
script is a file one can read, edit and resubmit, and ``--requeue`` and array
throttling are plain sbatch options. Each array task is one worker: it claims
cells until none are left, so N tasks drain the study and a preempted or
timed-out task's cell is re-run by the next claim (its attempt is marked stale
on SIGTERM, or found stale by heartbeat), never doubled.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.contract import SLURM_SUBMISSIONS
from harness.errors import ConfigError, OrcaAblateError

if TYPE_CHECKING:
    import optuna

__all__ = ["SlurmError", "SlurmRequest", "array_states", "recorded_submissions", "sbatch_script", "submit_array"]

SQUEUE_TIMEOUT_S = 20


class SlurmError(OrcaAblateError):
    """Slurm is not reachable from here, or refused the job; the message names the fix."""


@dataclass(frozen=True)
class SlurmRequest:
    """What to ask Slurm for: ``array`` worker tasks, each with these resources."""

    array: int
    partition: str | None = None
    time: str | None = None
    """Time limit per task, in sbatch's format (``HH:MM:SS``, ``D-HH``)."""
    cpus_per_worker: int = 1
    gpus_per_worker: int = 0
    mem: str | None = None
    """Memory per task, in sbatch's format (``16G``)."""
    requeue: bool = False
    sbatch_args: tuple[str, ...] = ()
    """Extra ``#SBATCH`` options, each as given (``--qos=long``)."""
    log_dir: Path = field(default_factory=lambda: Path("slurm-logs"))

    def __post_init__(self) -> None:
        if self.array < 1:
            raise ConfigError(f"--array {self.array}: expected 1 or more worker tasks")
        if self.cpus_per_worker < 1:
            raise ConfigError(f"--cpus-per-worker {self.cpus_per_worker}: expected 1 or more")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"--gpus-per-worker {self.gpus_per_worker}: expected 0 or more")
        for arg in self.sbatch_args:
            if not arg.startswith("-"):
                raise ConfigError(f"--sbatch-arg {arg!r}: expected an sbatch option such as --qos=long")


def sbatch_script(request: SlurmRequest, *, storage: str, study_name: str, max_retries: int = 1,
                  python: str | None = None) -> str:
    """Return the sbatch script of a worker array on ``storage`` (a URL every node reaches)."""
    name = f"orca-{study_name}"[:64]
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --array=0-{request.array - 1}",
             f"#SBATCH --cpus-per-task={request.cpus_per_worker}",
             f"#SBATCH --output={request.log_dir.resolve() / '%x-%A_%a.out'}", "#SBATCH --open-mode=append"]
    if request.partition:
        lines.append(f"#SBATCH --partition={request.partition}")
    if request.time:
        lines.append(f"#SBATCH --time={request.time}")
    if request.mem:
        lines.append(f"#SBATCH --mem={request.mem}")
    if request.gpus_per_worker:
        lines.append(f"#SBATCH --gpus-per-task={request.gpus_per_worker}")
    lines.append("#SBATCH --requeue" if request.requeue else "#SBATCH --no-requeue")
    lines += [f"#SBATCH {arg}" for arg in request.sbatch_args]
    command = [python or sys.executable, "-m", "studies.cli", "worker", "--storage", storage,
               "--study-name", study_name, "--max-retries", str(max_retries), "--no-progress"]
    lines += [
        "# One orca-ablate worker per array task: it takes cells until none are left.",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"',
        'echo "orca-ablate worker: array task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID} on $(hostname)"',
        "exec " + " ".join(shlex.quote(part) for part in command),
    ]
    return "\n".join(lines) + "\n"


def submit_array(script: str, path: Path) -> str:
    """Write ``script`` to ``path`` (mode 600: it may hold a storage password) and sbatch it; return the job id."""
    sbatch = _command("sbatch")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script, encoding="utf-8")
    os.chmod(path, 0o600)
    try:
        done = subprocess.run([sbatch, "--parsable", str(path)], capture_output=True, text=True,
                              timeout=SQUEUE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"sbatch did not answer within {SQUEUE_TIMEOUT_S} s; is slurmctld up (sinfo)?") from None
    if done.returncode != 0:
        raise SlurmError(f"sbatch refused {path}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def record_submission(study: optuna.Study, job_id: str, request: SlurmRequest, script: Path) -> None:
    """Add a submission to the study's ``slurm_submissions`` user attr."""
    entry = {"job_id": job_id, "array": request.array, "script": str(script),
             "submitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    study.set_user_attr(SLURM_SUBMISSIONS, [*recorded_submissions(study), entry])


def recorded_submissions(study: optuna.Study) -> list[dict[str, Any]]:
    """Return the job arrays submitted for ``study`` (oldest first)."""
    value = study.user_attrs.get(SLURM_SUBMISSIONS)
    return [dict(v) for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def array_states(job_ids: Sequence[str]) -> tuple[dict[str, Counter[str]], str | None]:
    """Return job id -> Counter of its array tasks' states as squeue shows them, and a note on what it cannot see.

    Without accounting (``sacct``), tasks that finished more than a few minutes ago
    have left squeue: they count as ``gone``. The note is None when squeue answered.
    """
    out: dict[str, Counter[str]] = {job: Counter() for job in job_ids}
    squeue = shutil.which("squeue")
    if squeue is None:
        return out, "Slurm is not reachable from here (no squeue): run status on a login node to see the array"
    try:
        done = subprocess.run([squeue, "-h", "-r", "-j", ",".join(job_ids), "-o", "%i %T"], capture_output=True,
                              text=True, timeout=SQUEUE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return out, f"squeue did not answer within {SQUEUE_TIMEOUT_S} s"
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        return out, f"squeue failed: {done.stderr.strip()}"
    for line in done.stdout.splitlines():
        task, _, state = line.strip().partition(" ")
        job = task.split("_")[0]
        if job in out:
            out[job][state.lower()] += 1
    return out, None


def _command(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SlurmError(f"{name} not found: run orca-ablate submit --slurm on a Slurm login node (where sbatch "
                         "and squeue are on the PATH)")
    return path
