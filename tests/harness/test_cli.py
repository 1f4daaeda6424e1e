from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from studies.cli import main


def _tiny(tiny_body: str) -> list[str]:
    # one --set with several KEY=VALUE, then more --set: both forms add up
    return ["--set", f"body.path={tiny_body}", "embedder.epochs=2", "embedder.samples=100",
            "--set", "embedder.proxy_samples=100", "embedder.proxy_classes=4", "--set", "finetune.epochs=1"]


@pytest.mark.parametrize("command", ["trial", "otdd"])
def test_set_takes_several_assignments_and_repeats(command: str) -> None:
    from studies.cli import build_parser

    args = build_parser().parse_args([command, "--task", "digits", "--set", "a=1", "b=2", "--set", "c=3"])
    assert args.sets == ["a=1", "b=2", "c=3"]


def test_otdd_command_prints_the_distance(tiny_body: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["otdd", "--task", "synthetic-1d", "--set", f"body.path={tiny_body}", "embedder.samples=60",
                 "--set", "embedder.proxy_samples=50", "embedder.proxy_classes=4"]) == 0
    out = capsys.readouterr().out
    assert "OTDD(vocab -> synthetic-1d) = " in out and "50 proxy x 60 task points, width 32" in out


def test_trial_json_is_one_object(tiny_body: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trial", "--task", "synthetic-1d", "--json", *_tiny(tiny_body)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    for key in ("test_score", "val_score", "metric", "modality", "otdd_before", "otdd_after", "otdd_curve",
                "seconds", "trainable_params", "peak_mem_mb", "config", "versions"):
        assert key in obj
    assert obj["config"]["task"] == "synthetic-1d" and obj["modality"] == "1d"


def test_trial_table_and_config_file(tiny_body: str, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("task: synthetic-2d\nfinetune:\n  epochs: 1\n")
    assert main(["trial", "--config", str(cfg), *_tiny(tiny_body)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "synthetic-2d" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "cifar"], "unknown task 'cifar'; expected one of"),
        (["--task", "digits", "--set", "embeder.epochs=2"], "did you mean embedder.epochs?"),
        (["--task", "digits", "--set", "embedder.proxy=cifar"], "unknown proxy 'cifar'"),
        (["--task", "digits", "--set", "embedder.objective=wasserstein"], "unknown embedder.objective"),
        (["--task", "digits", "--set", "finetune.freeze=everything"], "finetune.freeze='everything'"),
        (["--task", "npz:/nonexistent/x.npz"], "not found; expected an .npz"),
        (["--task", "digits", "--config", "/nonexistent.yaml"], "cannot read"),
    ],
)
def test_bad_input_exits_2_without_traceback(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "studies.cli", "trial", *args], capture_output=True, text=True,
                          env={**os.environ, "CI": os.environ.get("CI", "")}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_tasks_and_proxies_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "ucr:ItalyPowerDemand" in out and "npz:PATH" in out
    assert main(["proxies"]) == 0
    out = capsys.readouterr().out
    assert "vocab" in out and "fake" in out
