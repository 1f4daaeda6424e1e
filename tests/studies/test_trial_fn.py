"""Any method, not only ORCA: ``run --trial-fn MODULE:FUNCTION`` with free factor and task names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import write_report
from studies import SpecError, StudySpec, expand_cells, load_spec, run_study
from studies.storage import open_storage

TOY = "studies._testing:toy_trial"
SPEC: dict[str, Any] = {
    "name": "toy",
    "tasks": ["t1", "t2"],
    "seeds": [0, 1, 2, 3, 4],
    "factors": {"method": ["a", "b", "same"]},
    "base": {"noise": 0.005, "lr": 0.1},
    "hypotheses": [
        {"id": "b-helps", "kind": "helps", "factor": "method", "level": "b", "reference": "a"},
        {"id": "same-is-a", "kind": "no_change", "factor": "method", "level": "same", "reference": "a"},
    ],
}


def test_free_names_need_a_trial_function(write_spec: Any) -> None:
    path = write_spec(SPEC)
    with pytest.raises(SpecError, match=r"factors\.method: unknown config path"):
        load_spec(path)
    spec = load_spec(path, trial_fn=TOY)
    assert spec.free and spec.trial_fn == TOY
    assert spec.factors[0].path == "method" and spec.base == {"noise": 0.005, "lr": 0.1}
    assert StudySpec.from_dict(spec.to_dict()) == spec  # the study records the function with the spec
    assert load_spec(write_spec({**SPEC, "trial_fn": TOY})) == spec  # trial_fn: in the spec is the same


def test_the_function_gets_the_cells_settings_as_a_plain_dict(write_spec: Any) -> None:
    spec = load_spec(write_spec(SPEC), trial_fn=TOY)
    cell = expand_cells(spec)[1]
    assert cell.settings(spec) == {"noise": 0.005, "lr": 0.1, "method": "b", "task": "t1", "seed": 0}
    with pytest.raises(TypeError, match="base_settings"):
        spec.base_config()


@pytest.mark.parametrize("bad, message", [
    ({"trial_fn": "no-colon"}, "trial_fn: expected module:function"),
    ({"trial_fn": TOY, "baselines": ["knn"]}, "baselines run through harness.run_trial"),
    ({"trial_fn": TOY, "factors": {"baseline": ["x"]}}, "reserved for the harness's baseline cells"),
    ({"trial_fn": TOY, "factors": {"seed": [1]}}, "a factor of its own"),
])
def test_bad_trial_fn_specs_name_the_fix(write_spec: Any, bad: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_spec(write_spec({**SPEC, **bad}))


def test_a_study_runs_one_trial_function(write_spec: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = load_spec(write_spec({**SPEC, "seeds": [0]}), trial_fn=TOY)
    assert run_study(spec, storage=url, inline=True, progress=False).complete == 6
    other = load_spec(write_spec({**SPEC, "seeds": [0]}), trial_fn="studies._testing:fake_trial")
    with pytest.raises(SpecError, match="trial_fn: study 'toy' runs studies._testing:toy_trial"):
        run_study(other, storage=url, inline=True, progress=False)


def test_any_method_end_to_end_with_hypotheses_secondary_metrics_and_latex(write_spec: Any, tmp_path: Path,
                                                                           cli_env: dict[str, str]) -> None:
    path = write_spec(SPEC)
    url = f"sqlite:///{tmp_path / 's.db'}"
    run = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(path), "--trial-fn", TOY, "--workers", "2",
                          "--storage", url, "--no-progress"], env=cli_env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "30/30 cells complete" in run.stdout
    out = tmp_path / "report"
    write_report(url, "toy", out, n_resamples=199)
    tests = pd.read_csv(out / "tests.csv")
    summary = tests[(tests["test"] == "hypothesis") & (tests["task"] == "all")].set_index("hypothesis")
    assert summary.loc["b-helps", "verdict"] == "supported"  # b is +0.05 on every task, noise 0.005
    assert summary.loc["same-is-a", "verdict"] != "contradicted"
    secondary = tests[(tests["test"] == "contrast") & (tests["y"] == "macro_f1")]
    assert set(secondary["level"]) == {"b", "same"} and len(secondary) == 4
    report = (out / "report.md").read_text()
    assert "| b-helps |" in report and "#### `macro_f1` (higher is better" in report
    assert "No trial recorded `otdd_after`" in report
    assert "b-helps" in (out / "tables.tex").read_text()


def test_a_function_that_cannot_be_imported_creates_nothing(write_spec: Any, tmp_path: Path,
                                                            cli_env: dict[str, str]) -> None:
    run = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(write_spec(SPEC)), "--trial-fn",
                          "no_such_module:run", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--no-progress"],
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "orca-ablate run: error: cannot load the trial function 'no_such_module:run': ModuleNotFoundError: No "
        "module named 'no_such_module'; it must be importable here and on every worker host (a module on the "
        "Python path or in the working directory)"]
    assert not (tmp_path / "s.db").exists()


def test_a_module_in_the_working_directory_is_found(write_spec: Any, tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "mytrials.py").write_text(
        "def run(settings, on_epoch=None):\n"
        "    return {'test_score': 0.5 + 0.1 * (settings['method'] == 'b') + 0.001 * settings['seed'],\n"
        "            'direction': 'maximize'}\n")
    run = subprocess.run([sys.executable, "-m", "studies.cli", "run", str(write_spec({**SPEC, "seeds": [0, 1]})),
                          "--trial-fn", "mytrials:run", "--workers", "1", "--storage",
                          f"sqlite:///{tmp_path / 's.db'}", "--no-progress"],
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "12/12 cells complete" in run.stdout
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    import optuna

    trials = optuna.load_study(study_name="toy", storage=storage).get_trials()
    assert sorted({round(t.value, 3) for t in trials}) == [0.5, 0.501, 0.6, 0.601]


def test_numbers_a_trial_function_returns_become_secondary_metrics() -> None:
    from studies.engine._attempts import result_attrs

    harness_like = {"test_score": 0.9, "metric": "accuracy", "val_curve": [0.5, 0.6], "trainable_params": 10,
                    "details": {"test_metrics": {"accuracy": 0.9, "macro_f1": 0.85}}}
    assert result_attrs(harness_like, 1.0)["details"] == harness_like["details"]  # nothing added
    free = {"test_score": 0.9, "macro_f1": 0.8, "flag": True, "bad": float("nan"), "test_metrics": {"auroc": 0.7}}
    attrs = result_attrs(free, 1.0)
    assert attrs["details"] == {"test_metrics": {"auroc": 0.7, "macro_f1": 0.8}}
