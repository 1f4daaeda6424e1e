"""Spec validation: good files load; each malformed one fails with a message naming the path and fix."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from studies import SpecError, StudySpec, load_spec, shipped_specs
from studies.spec import SpecParser

ISSUE_EXAMPLE = """\
name: embedder-epochs          # the study name unless --study-name is given
tasks: [digits, "ucr:ItalyPowerDemand"]   # a factor of its own
seeds: [0, 1, 2]               # every cell runs once per seed
factors:                       # the grid; keys are TrialConfig paths; levels are plain values
  embedder.epochs: [0, 2, 8]
  embedder.proxy: [vocab, fake]
  finetune.freeze: [none, body]
  body.pretrained: [true, false]
base:                          # fixed settings for every cell
  finetune.epochs: 3
metric: test_score             # optional; the trial's value; default test_score
"""

GOOD: dict[str, Any] = {
    "name": "good",
    "tasks": ["digits"],
    "seeds": [0, 1],
    "factors": {"embedder.epochs": [0, 2]},
    "base": {"finetune.epochs": 3},
}


def test_issue_example_loads(write_spec: Callable[..., Path]) -> None:
    spec = load_spec(write_spec(ISSUE_EXAMPLE), validator=None)
    assert spec.name == "embedder-epochs"
    assert spec.tasks == ("digits", "ucr:ItalyPowerDemand")
    assert spec.seeds == (0, 1, 2)
    assert spec.factor_paths == ["embedder.epochs", "embedder.proxy", "finetune.freeze", "body.pretrained"]
    assert spec.factors[3].levels == (True, False)
    assert dict(spec.base) == {"finetune.epochs": 3}
    assert spec.metric == "test_score" and spec.direction == "maximize"
    assert spec.base_config().finetune.epochs == 3


def test_round_trip_through_dict() -> None:
    spec = StudySpec.from_dict(GOOD)
    assert StudySpec.from_dict(spec.to_dict()) == spec


def test_nested_sections_and_coercion() -> None:
    spec = StudySpec.from_dict({**GOOD, "factors": {"finetune": {"lr": [1, "1e-3"]}},
                                "base": {"embedder": {"epochs": 2.0}}})
    assert spec.factors[0] == spec.factors[0].__class__("finetune.lr", (1.0, 0.001))
    assert spec.base == {"embedder.epochs": 2}


def test_overrides_replace_base() -> None:
    spec = StudySpec.from_dict(GOOD, overrides={"finetune.epochs": 1, "data.max_train_samples": None})
    assert spec.base == {"finetune.epochs": 1, "data.max_train_samples": None}


def test_search_spec() -> None:
    spec = StudySpec.from_dict({**GOOD, "metric": "val_score", "trials_per_cell": 4, "sampler": "random",
                                "search": {"finetune.lr": {"low": "1e-4", "high": 1e-2, "log": True},
                                           "finetune.batch_size": {"low": 16, "high": 64, "step": 16},
                                           "finetune.optimizer": {"choices": ["adamw", "sgd"]}}})
    dims = {d.path: d.distribution() for d in spec.search}
    assert dims["finetune.lr"].log and dims["finetune.lr"].low == pytest.approx(1e-4)
    assert type(dims["finetune.batch_size"]).__name__ == "IntDistribution"
    assert dims["finetune.optimizer"].choices == ("adamw", "sgd")
    assert StudySpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("name", ["quickstart", "proxy", "embedder-epochs", "freezing", "pretraining"])
def test_shipped_specs(name: str) -> None:
    spec = load_spec(name, validator=None)
    assert spec.name == name
    assert name in shipped_specs()
    if name != "quickstart":
        assert len(spec.tasks) >= 2 and len(spec.seeds) >= 3
        assert any(t.startswith("ucr:") for t in spec.tasks) and "digits" in spec.tasks
    assert "sized from measured step times" in shipped_specs()[name].read_text()


def test_validator_errors_name_the_level() -> None:
    def validator(config: Any) -> None:
        if config.embedder.proxy not in ("vocab", "fake"):
            raise ConfigError(f"unknown proxy {config.embedder.proxy!r}; expected one of ['fake', 'vocab']")

    with pytest.raises(SpecError, match=r"factors\.embedder\.proxy\[1\]: unknown proxy 'cifar'; expected one of"):
        StudySpec.from_dict({**GOOD, "factors": {"embedder.proxy": ["vocab", "cifar"]}}, validator=validator)


def test_spec_error_is_a_user_error() -> None:
    assert issubclass(SpecError, ConfigError) and SpecError.user_error


def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return data


_DROP = object()

MALFORMED: list[tuple[str, Any, str]] = [
    ("misspelt factor path", _with(factors={"embeder.epochs": [0, 2]}),
     "factors.embeder.epochs: unknown config path; did you mean embedder.epochs?"),
    ("misspelt base path", _with(base={"finetune.epoch": 3}),
     "base.finetune.epoch: unknown config path; did you mean finetune.epochs?"),
    ("unknown top-level key", _with(trails_per_cell=2), "trails_per_cell: unknown spec key; did you mean trials_per_cell?"),
    ("missing tasks", _with(tasks=_DROP), "tasks: missing; a spec needs tasks:"),
    ("missing seeds", _with(seeds=_DROP), "seeds: missing"),
    ("missing name", _with(name=_DROP), "name: missing"),
    ("bad name", _with(name="my study"), "name: 'my study': a study name is letters"),
    ("tasks not a list", _with(tasks="digits"), "tasks: expected a list, got 'digits'"),
    ("empty tasks", _with(tasks=[]), "tasks: is empty"),
    ("duplicate task", _with(tasks=["digits", "digits"]), "tasks: duplicate value 'digits'"),
    ("non-string task", _with(tasks=["digits", 3]), "tasks[1]: expected a task name"),
    ("negative seed", _with(seeds=[0, -1]), "seeds[1]: expected an integer from 0 to 4294967295, got -1"),
    ("bool seed", _with(seeds=[True]), "seeds[0]: expected an integer from 0 to 4294967295, got True"),
    ("duplicate seed", _with(seeds=[0, 0]), "seeds: duplicate value 0"),
    ("level of the wrong type", _with(factors={"embedder.epochs": [0, "two"]}),
     "factors.embedder.epochs[1]: expected int, got 'two' (str)"),
    ("levels not a list", _with(factors={"embedder.epochs": 3}), "factors.embedder.epochs: expected a list, got 3"),
    ("empty levels", _with(factors={"embedder.epochs": []}), "factors.embedder.epochs: is empty"),
    ("duplicate level", _with(factors={"embedder.epochs": [2, 2]}), "factors.embedder.epochs: duplicate value 2"),
    ("non-scalar level", _with(factors={"embedder.epochs": [[1]]}), "factors.embedder.epochs[0]: expected a plain value"),
    ("yaml boolean for a string", _with(factors={"finetune.freeze": ["none", False]}),
     "factors.finetune.freeze[1]: expected str, got False (bool); YAML reads yes/no"),
    ("task as a factor", _with(factors={"task": ["digits"]}), "factors.task: the task is a factor of its own"),
    ("seed in base", _with(base={"seed": 3}), "base.seed: the seed is a factor of its own; list values under seeds:"),
    ("factor also in base", _with(base={"embedder.epochs": 3}),
     "base.embedder.epochs: embedder.epochs is a factor of this spec"),
    ("section as a path", _with(base={"embedder": 3}), "base.embedder: is a section, not a value"),
    ("base value of the wrong type", _with(base={"body.pretrained": "maybe"}),
     "base.body.pretrained: expected bool, got 'maybe' (str)"),
    ("unknown metric", _with(metric="test_acc"), "metric: expected one of ['test_score', 'val_score', 'otdd_before', "
     "'otdd_after'], got 'test_acc'; did you mean test_score?"),
    ("unknown direction", _with(direction="max"), "direction: expected one of ['maximize', 'minimize'], got 'max'"),
    ("search tuned on test", _with(search={"finetune.lr": {"low": 1e-4, "high": 1e-2}}),
     "metric: a spec with search: must optimise val_score, not test_score"),
    ("trials per cell without search", _with(trials_per_cell=3), "trials_per_cell: 3 trials of a cell without search:"),
    ("sampler without search", _with(sampler="tpe"), "sampler: a sampler tunes search: dimensions; this spec has none"),
    ("bad trials per cell", _with(trials_per_cell=0), "trials_per_cell: expected a positive integer, got 0"),
    ("search range reversed", _with(metric="val_score", search={"finetune.lr": {"low": 1e-2, "high": 1e-4}}),
     "search.finetune.lr: low (0.01) must be below high (0.0001)"),
    ("search log with low 0", _with(metric="val_score", search={"finetune.lr": {"low": 0, "high": 1, "log": True}}),
     "search.finetune.lr.low: a log range needs low > 0, got 0.0"),
    ("search unknown key", _with(metric="val_score", search={"finetune.lr": {"low": 0, "hi": 1}}),
     "search.finetune.lr.hi: unknown search key; did you mean high?"),
    ("search range on a string", _with(metric="val_score", search={"finetune.optimizer": {"low": 0, "high": 1}}),
     "search.finetune.optimizer: finetune.optimizer holds a str; search it with choices: [...]"),
    ("search path is a factor", _with(metric="val_score", search={"embedder.epochs": {"low": 0, "high": 4}}),
     "search.embedder.epochs: embedder.epochs is also in factors"),
    ("search choices and range", _with(metric="val_score", search={"finetune.lr": {"low": 0, "high": 1,
                                                                                   "choices": [0.1]}}),
     "search.finetune.lr: give either choices or a range"),
    ("search log and step", _with(metric="val_score",
                                  search={"finetune.lr": {"low": 0.1, "high": 1, "log": True, "step": 0.1}}),
     "search.finetune.lr: log and step cannot be combined"),
    ("factors not a mapping", _with(factors=["embedder.epochs"]), "factors: expected a mapping of config paths"),
    ("infinite level", _with(factors={"finetune.lr": [float("inf")]}), "factors.finetune.lr[0]: expected a finite number"),
]


@pytest.mark.parametrize(("case", "data", "message"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_spec(case: str, data: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(data, source="spec.yaml")
    assert str(info.value).startswith("spec.yaml: ")
    assert message in str(info.value), str(info.value)


MALFORMED_FILES: list[tuple[str, str, str]] = [
    ("empty file", "", "expected a mapping with keys name, tasks, seeds, factors, base; got an empty file"),
    ("a list", "- digits\n", "expected a mapping with keys name, tasks, seeds, factors, base; got list"),
    ("yaml syntax", "name: x\ntasks: [digits\n", "invalid YAML"),
    ("duplicate key", "name: a\nname: b\ntasks: [digits]\nseeds: [0]\n", "duplicate key 'name'; each key may appear once"),
]


@pytest.mark.parametrize(("case", "text", "message"), MALFORMED_FILES, ids=[c[0] for c in MALFORMED_FILES])
def test_malformed_file(case: str, text: str, message: str, write_spec: Callable[..., Path]) -> None:
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path, validator=None)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_unknown_spec_name_suggests_a_shipped_one() -> None:
    with pytest.raises(SpecError, match=r"spec 'quickstat': no such file, and no shipped spec of that name; "
                                        r"did you mean quickstart\?"):
        load_spec("quickstat", validator=None)


def test_override_of_a_factor_is_refused() -> None:
    with pytest.raises(SpecError, match=r"--set embedder.epochs: embedder.epochs is a factor of this spec"):
        StudySpec.from_dict(GOOD, overrides={"embedder.epochs": 4})


def test_parser_lives_in_a_private_module() -> None:
    assert SpecParser.__module__ == "studies.spec._parser"


HYPOTHESES: list[dict[str, Any]] = [
    {"id": "proxy-irrelevant", "says": "the proxy does not matter", "kind": "no_change",
     "factor": "embedder.proxy", "level": "fake", "reference": "vocab", "tasks": "all", "across": "all"},
    {"id": "body-critical", "kind": "helps", "factor": "finetune.freeze",
     "groups": {"body trained": ["none"], "body frozen": ["body"]}, "level": "body trained",
     "reference": "body frozen", "across": 1},
    {"id": "both", "all_of": ["proxy-irrelevant", "body-critical"]},
    {"id": "otdd", "kind": "no_prediction", "x": "otdd_after", "better": "lower", "tasks": ["digits"]},
]
WITH_HYPOTHESES: dict[str, Any] = {**GOOD, "factors": {"embedder.proxy": ["vocab", "fake"],
                                                       "finetune.freeze": ["none", "body"]},
                                   "analysis": {"margin": 0.02, "alpha": 0.1}, "hypotheses": HYPOTHESES}


def test_hypotheses_and_analysis_round_trip() -> None:
    spec = StudySpec.from_dict(WITH_HYPOTHESES)
    assert [h.id for h in spec.hypotheses] == ["proxy-irrelevant", "body-critical", "both", "otdd"]
    assert spec.analysis.margin == 0.02 and spec.analysis.alpha == 0.1 and spec.analysis.rho_weak == 0.3
    assert spec.hypotheses[1].across == 1 and spec.hypotheses[2].all_of == ("proxy-irrelevant", "body-critical")
    assert StudySpec.from_dict(spec.to_dict()) == spec
    assert "hypotheses" not in StudySpec.from_dict(GOOD).to_dict()  # an old spec's canonical dict is unchanged


def test_stored_hypotheses_read_back_in_analysis() -> None:
    import analysis

    stored = StudySpec.from_dict(WITH_HYPOTHESES).to_dict()
    read = analysis.read_hypotheses(stored)
    assert read[0].level == ("fake",) and read[1].members("body frozen") == ("body",)
    assert analysis.read_settings(stored).margin == 0.02


def _hyp(index: int, **changes: Any) -> dict[str, Any]:
    items = copy.deepcopy(HYPOTHESES)
    items[index].update(changes)
    return {**WITH_HYPOTHESES, "hypotheses": items}


BAD_HYPOTHESES: list[tuple[str, Any, str]] = [
    ("unknown kind", _hyp(0, kind="equivalent"), "hypotheses.proxy-irrelevant.kind: expected one of"),
    ("unknown factor", _hyp(0, factor="embedder.epochs"), "hypotheses.proxy-irrelevant.factor: expected one of "
     "the spec's factors"),
    ("unknown level", _hyp(0, level="cifar"), "hypotheses.proxy-irrelevant.level: 'cifar' is neither a level"),
    ("level is reference", _hyp(0, level="vocab"), "is also the reference"),
    ("unknown key", _hyp(0, margin=0.1), "hypotheses.proxy-irrelevant.margin: unknown key"),
    ("bad across", _hyp(0, across=0), "hypotheses.proxy-irrelevant.across: expected all or a positive integer"),
    ("bad tasks", _hyp(0, tasks="3d"), "hypotheses.proxy-irrelevant.tasks: expected one of ['all', '1d', '2d']"),
    ("unknown task", _hyp(0, tasks=["ecg"]), "['ecg'] are not tasks of this spec"),
    ("group of unknown levels", _hyp(1, groups={"body trained": ["all"], "body frozen": ["body"]}),
     "hypotheses.body-critical.groups.body trained: ['all'] are not levels"),
    ("all_of unknown", _hyp(2, all_of=["nope"]), "hypotheses.both.all_of: ['nope'] are not other hypotheses"),
    ("bad better", _hyp(3, better="smaller"), "hypotheses.otdd.better: expected lower or higher"),
    ("bad alpha", {**WITH_HYPOTHESES, "analysis": {"alpha": 0.7}}, "analysis.alpha: expected a number in (0, 0.5)"),
    ("unknown analysis key", {**WITH_HYPOTHESES, "analysis": {"margn": 0.1}},
     "analysis.margn: unknown key; did you mean margin?"),
    ("duplicate id", {**WITH_HYPOTHESES, "hypotheses": [HYPOTHESES[0], HYPOTHESES[0]]},
     "hypotheses.proxy-irrelevant: duplicate id"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_HYPOTHESES, ids=[c[0] for c in BAD_HYPOTHESES])
def test_malformed_hypotheses(case: str, data: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        StudySpec.from_dict(data, source="spec.yaml")
    assert message in str(info.value)
