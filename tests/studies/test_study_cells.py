"""Cell expansion: every (task, levels, seed) once, stable keys, params and configs."""

from __future__ import annotations

import json
from typing import Any

from studies import StudySpec, cell_key, expand_cells, param_distributions


def test_expansion_covers_the_grid_once(small: dict[str, Any]) -> None:
    spec = StudySpec.from_dict(small)
    cells = expand_cells(spec)
    assert len(cells) == 2 * 2 * 2 * 2
    assert len({c.ident for c in cells}) == len(cells)
    assert [c.seed for c in cells[:8]] == [0] * 8  # seed-major: a balanced first replicate
    assert {c.task for c in cells[:4]} == {"digits"}


def test_key_is_canonical_json_of_task_levels_seed(small: dict[str, Any]) -> None:
    cell = expand_cells(StudySpec.from_dict(small))[1]
    assert json.loads(cell.key) == {"task": "digits", "embedder.epochs": 0, "finetune.freeze": "body", "seed": 0}
    assert cell.key == cell_key("digits", {"finetune.freeze": "body", "embedder.epochs": 0}, 0)
    assert cell.label() == "digits embedder.epochs=0 finetune.freeze=body seed=0"


def test_params_and_config(small: dict[str, Any]) -> None:
    spec = StudySpec.from_dict(small)
    cell = expand_cells(spec)[-1]
    assert cell.params() == {"task": "synthetic-1d", "embedder.epochs": 2, "finetune.freeze": "body", "seed": 1}
    config = cell.config(spec)
    assert (config.task, config.seed, config.embedder.epochs, config.finetune.freeze, config.finetune.epochs) == \
        ("synthetic-1d", 1, 2, "body", 3)


def test_distributions_are_categorical_over_declared_levels(small: dict[str, Any]) -> None:
    dists = param_distributions(StudySpec.from_dict({**small, "factors": {"body.pretrained": [True, False]}}))
    assert list(dists) == ["task", "body.pretrained", "seed"]
    assert dists["body.pretrained"].choices == (True, False)
    assert dists["seed"].choices == (0, 1)


def test_search_slots(small: dict[str, Any]) -> None:
    spec = StudySpec.from_dict({**small, "metric": "val_score", "trials_per_cell": 3,
                                "search": {"finetune.lr": {"low": 1e-4, "high": 1e-2, "log": True}}})
    cells = expand_cells(spec)
    assert len(cells) == 16 * 3
    assert {c.slot for c in cells} == {0, 1, 2}
    assert len({c.key for c in cells}) == 16
