"""Finding and reading spec files: a path, or the name of a spec shipped in ``studies/specs/``."""

from __future__ import annotations

import difflib
import importlib.resources
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from ._model import StudySpec
from ._parser import DEFAULT_BASELINES
from ._types import SpecError, Validator

__all__ = ["load_spec", "shipped_specs"]

BODY_PATH = "body.path"


def shipped_specs() -> dict[str, Path]:
    """Return the specs shipped in ``studies/specs/``: name -> file."""
    root = importlib.resources.files("studies") / "specs"
    out: dict[str, Path] = {}
    for entry in root.iterdir():
        if entry.name.endswith(".yaml"):
            out[entry.name[: -len(".yaml")]] = Path(str(entry))
    return dict(sorted(out.items()))


def load_spec(spec: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None, *,
              validator: Validator | Literal["harness"] | None = "harness",
              tasks: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
              check_data: bool = True, trial_fn: str | None = None, max_seeds: int | None = None) -> StudySpec:
    """Return the spec at a path, or the shipped spec of that name, validated.

    ``validator="harness"`` (the default) checks registry names with
    ``harness.validate_config``; pass None to skip, or a function of your own.
    ``tasks`` and ``seeds`` (from ``run --tasks/--seeds``) replace the spec's lists
    and are checked like them. With the harness validator and ``check_data``, every
    task's data and every ``body.path`` must be present here (headers only; nothing is
    loaded): ``check_data=False`` is ``--allow-missing-data``, for a host that creates a
    study it does not run. ``trial_fn`` (``run --trial-fn module:function``) replaces the
    spec's ``trial_fn:``; with a trial function other than ``harness:run_trial`` nothing is
    checked against the harness (names are the function's). ``max_seeds`` (``run --adaptive
    --max-seeds N``) makes the seeds adaptive: ``{start: 3, step: 2, max: N}``.
    """
    path = _find_spec_file(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text file; a spec is YAML in UTF-8 (see studies/specs/quickstart.yaml)") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None
    source = str(path)
    replaced: dict[str, Any] = {key: list(value) for key, value in (("tasks", tasks), ("seeds", seeds))
                                if value is not None}
    if trial_fn is not None:
        replaced["trial_fn"] = trial_fn
    if max_seeds is not None:
        replaced["seeds"] = {"start": min(3, max_seeds), "step": 2, "max": max_seeds}
    if replaced and isinstance(data, dict):
        data = {**data, **replaced}
        source += " with " + " and ".join(f"--{key.replace('_', '-')}" for key in replaced)
    check = _harness_validator if isinstance(validator, str) else validator
    loaded = StudySpec.from_dict(data, source=source, validator=check, overrides=overrides)
    if loaded.free:
        return loaded
    if isinstance(validator, str) and loaded.baselines:
        loaded = _resolve_baselines(loaded, source)
    if check_data and isinstance(validator, str):
        _check_data(loaded, source)
    return loaded


def _resolve_baselines(spec: StudySpec, source: str) -> StudySpec:
    """Return ``spec`` with ``default`` baselines replaced per task, every name checked against the harness."""
    import dataclasses

    from harness.baselines import check_baseline, default_baselines
    from harness.errors import ConfigError
    from harness.tasks import get_task

    resolved = []
    for task, names in spec.baselines:
        info = get_task(task)
        output = info.output
        out: list[str] = []
        for name in names:
            try:
                if name == DEFAULT_BASELINES:
                    if info.modality == "auto":
                        raise ConfigError(f"task {task!r} decides its modality from its data; name its baselines "
                                          "(e.g. baselines: {" + task + ": [knn, logreg]})")
                    out += [n for n in default_baselines(info.modality, output) if n not in out]
                elif info.modality != "auto":
                    check_baseline(name, info.modality, output, task)
                    out.append(name)
                else:
                    out.append(name)
            except ConfigError as exc:
                raise SpecError(f"{source}: baselines.{task}: {exc}") from None
        resolved.append((task, tuple(dict.fromkeys(out))))
    return dataclasses.replace(spec, baselines=tuple(resolved))


def _check_data(spec: StudySpec, source: str) -> None:
    """Raise SpecError when a task's data or a body checkpoint is not on this host (file headers only)."""
    from harness import check_data
    from harness.errors import ConfigError, DataError

    bodies = next((f.levels for f in spec.factors if f.path == BODY_PATH), (None,))
    base = spec.base_config()
    for i, task in enumerate(spec.tasks):
        for body in bodies:
            config = base.override({"task": task, **({BODY_PATH: body} if body is not None else {})})
            try:
                check_data(config)
            except (ConfigError, DataError) as exc:  # data missing or malformed, a checkpoint not supported
                raise SpecError(f"{source}: tasks[{i}]: {exc}; if the hosts that run the cells have it and this "
                                "one does not, pass --allow-missing-data") from None


def _find_spec_file(spec: str | os.PathLike[str]) -> Path:
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_specs()
    if str(spec) in shipped:
        return shipped[str(spec)]
    hint = difflib.get_close_matches(str(spec), list(shipped), n=1)
    fix = f"; did you mean {hint[0]}?" if hint else ""
    raise SpecError(f"spec {str(spec)!r}: no such file, and no shipped spec of that name{fix} "
                    f"(shipped: {', '.join(shipped)})")


def _harness_validator(config: Any) -> None:
    """Check the registry names of ``config`` with ``harness.validate_config`` (imported on first use: torch)."""
    from harness import validate_config

    validate_config(config)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; each key may appear once", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
