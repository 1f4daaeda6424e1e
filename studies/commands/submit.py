"""``orca-ablate submit SPEC --slurm --array N``: create or extend the study, then submit N workers as a Slurm array."""

from __future__ import annotations

import argparse

from ._options import add_spec_arguments, add_storage_arguments
from .plan import add_resource_arguments

HELP = "create or extend the study of a spec and submit its workers to Slurm as one job array"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``submit`` (their names are a contract: scripts call them)."""
    add_spec_arguments(parser)
    add_storage_arguments(parser)
    parser.add_argument("--slurm", action="store_true", help="submit to Slurm (sbatch); the only scheduler so far")
    parser.add_argument("--array", type=int, required=True, metavar="N", help="worker tasks in the job array")
    parser.add_argument("--partition", default=None, metavar="P", help="Slurm partition")
    parser.add_argument("--time", default=None, metavar="T", help="time limit per worker task (sbatch --time)")
    add_resource_arguments(parser)
    parser.add_argument("--mem", default=None, metavar="M", help="memory per worker task (sbatch --mem, e.g. 16G)")
    parser.add_argument("--sbatch-arg", dest="sbatch_args", action="append", default=[], metavar="ARG",
                        help="an extra sbatch option, e.g. --sbatch-arg=--qos=long (repeatable)")
    parser.add_argument("--requeue", action="store_true",
                        help="let Slurm requeue a preempted or failed worker task (its cell is re-run, never doubled)")
    parser.add_argument("--max-retries", type=int, default=1, metavar="R",
                        help="each worker re-runs a cell whose attempt failed up to R times (default 1)")
    parser.add_argument("--log-dir", default="slurm-logs", metavar="DIR",
                        help="where the sbatch script and the workers' logs go (default ./slurm-logs; on a "
                             "filesystem the nodes share)")
    parser.add_argument("--artifact-dir", default=None, metavar="DIR",
                        help="where reports and figures are stored, recorded in the study (see run --help)")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script; create and submit nothing")


def run(args: argparse.Namespace) -> int:
    """Create or extend the study, print the plan, submit the array, print how to watch it; return 0."""
    import datetime as dt
    import shlex
    from pathlib import Path

    from harness.contract import DEFAULT_STORAGE, journal_path
    from harness.errors import ConfigError

    from ..engine import run_study
    from ..engine._plan import plan_study
    from ..engine._slurm import SlurmRequest, record_submission, sbatch_script, submit_array
    from ..storage import backend_for, load_study, mask_url, open_storage
    from ._options import spec_from_args

    if not args.slurm:
        raise ConfigError("choose the scheduler: --slurm (the only one so far)")
    if args.max_retries < 0:
        raise ConfigError(f"--max-retries {args.max_retries}: expected 0 or more")
    request = SlurmRequest(args.array, args.partition, args.time, args.cpus_per_worker, args.gpus_per_worker,
                           args.mem, args.requeue, tuple(args.sbatch_args), Path(args.log_dir))
    url = DEFAULT_STORAGE if args.storage is None else args.storage
    if backend_for(url).shared_by != "hosts":
        raise ConfigError(f"--storage {mask_url(url)}: Slurm workers on many nodes need PostgreSQL "
                          "(postgresql://USER@HOST/DB) or a journal file on a shared filesystem (journal:///PATH.log)")
    journal = journal_path(url)
    node_url = f"journal://{journal.resolve()}" if journal is not None else url  # nodes start elsewhere
    spec = spec_from_args(args)
    name = args.study_name or spec.name
    script = sbatch_script(request, storage=node_url, study_name=name, max_retries=args.max_retries)
    if args.dry_run:
        print(script, end="")
        return 0
    print(plan_study(spec, storage=url, study_name=name, cpus_per_worker=args.cpus_per_worker,
                     gpus_per_worker=args.gpus_per_worker).summary())
    report = run_study(spec, storage=url, study_name=name, workers=0, artifact_dir=args.artifact_dir,
                       progress=False)
    if report.complete == report.total:
        print(f"every cell of study {name} is complete: nothing to submit")
        return 0
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = request.log_dir.resolve() / f"{name}-{stamp}.sbatch"
    job = submit_array(script, path)
    record_submission(load_study(open_storage(url), name), job, request, path)
    shown = shlex.quote(mask_url(url))
    print(f"submitted job array {job}: {args.array} worker task(s) on study {name} (script {path})")
    print(f"  watch:  squeue -j {job}    orca-ablate status --storage {shown} --study {shlex.quote(name)}")
    print(f"  logs:   {request.log_dir.resolve()}/orca-{name}-{job}_<task>.out")
    print(f"  cancel: scancel {job}")
    return 0
