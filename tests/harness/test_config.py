from __future__ import annotations

import pytest

from harness import ConfigError, TrialConfig, config_paths, parse_assignments
from harness.config import flatten


def test_defaults_and_from_dict_nested_and_dotted() -> None:
    cfg = TrialConfig.from_dict({"task": "ucr:ECG200", "embedder": {"epochs": 3}, "finetune.lr": "1e-3"})
    assert cfg.task == "ucr:ECG200"
    assert cfg.embedder.epochs == 3
    assert cfg.finetune.lr == pytest.approx(1e-3)
    assert cfg.finetune.body_lr == pytest.approx(1e-4)  # default kept
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg


def test_config_is_frozen() -> None:
    cfg = TrialConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]


def test_override_returns_copy() -> None:
    cfg = TrialConfig()
    new = cfg.override({"embedder.epochs": 4, "body.layers": None, "body.pretrained": False})
    assert (new.embedder.epochs, new.body.layers, new.body.pretrained) == (4, None, False)
    assert cfg.embedder.epochs == TrialConfig().embedder.epochs


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ({"embeder.epochs": 2}, "embeder.epochs: unknown config path; did you mean embedder.epochs?"),
        ({"finetune.bodylr": 1e-3}, "did you mean finetune.body_lr?"),
        ({"embedder": 3}, "embedder: is a section"),
        ({"embedder.epochs": "two"}, "embedder.epochs: expected int, got 'two'"),
        ({"embedder.epochs": True}, "embedder.epochs: expected int"),
        ({"body.pretrained": "yes"}, "body.pretrained: expected bool"),
        ({"body.layers": 1.5}, "body.layers: expected int"),
        ({"finetune.lr": "fast"}, "finetune.lr: expected float"),
        ({"task": 3}, "task: expected str"),
    ],
)
def test_bad_keys_and_values(assignment: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("(", r"\(")):
        TrialConfig().override(assignment)


def test_unknown_nested_key_in_from_dict() -> None:
    with pytest.raises(ConfigError, match="finetune.epoch: unknown config path; did you mean finetune.epochs"):
        TrialConfig.from_dict({"finetune": {"epoch": 3}})


def test_flat_is_every_path_in_order_and_round_trips() -> None:
    cfg = TrialConfig().override({"embedder.epochs": 2, "body.layers": 1})
    flat = cfg.flat()
    assert list(flat) == config_paths()
    assert flat["embedder.epochs"] == 2 and flat["body.layers"] == 1 and flat["task"] == "digits"
    assert TrialConfig().override(flat) == cfg and TrialConfig.from_dict(flat) == cfg


def test_flatten_any_nested_mapping() -> None:
    nested = {"task": "digits", "embedder": {"epochs": 2, "extra": {"deep": [1, 2]}}, "finetune.lr": 0.1, "data": {}}
    assert flatten(nested) == {"task": "digits", "embedder.epochs": 2, "embedder.extra.deep": [1, 2],
                               "finetune.lr": 0.1}
    assert flatten({"a": {"b": 1}}, prefix="x.") == {"x.a.b": 1}
    assert flatten(TrialConfig().to_dict()) == TrialConfig().flat()
    with pytest.raises(ConfigError, match="config keys must be strings"):
        flatten({"embedder": {1: 2}})
    with pytest.raises(ConfigError, match="config: expected a mapping, got list"):
        flatten([1, 2])  # type: ignore[arg-type]


def test_parse_assignments_yaml_scalars() -> None:
    got = parse_assignments(["body.pretrained=false", "body.layers=null", "embedder.epochs=4", "task=ucr:Crop"])
    assert got == {"body.pretrained": False, "body.layers": None, "embedder.epochs": 4, "task": "ucr:Crop"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignments(["embedder.epochs"])


def test_paths_cover_every_section() -> None:
    paths = config_paths()
    for p in ("task", "seed", "device", "data.val_fraction", "body.layers", "embedder.init", "finetune.freeze"):
        assert p in paths
    assert TrialConfig().get("finetune.freeze") == "none"


def test_public_names_resolve() -> None:
    import harness

    for name in harness.__all__:
        assert getattr(harness, name) is not None, name


def test_importing_harness_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, harness; harness.TrialConfig(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
