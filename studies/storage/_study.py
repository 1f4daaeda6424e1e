"""Creating, resuming and extending the Optuna study behind a spec.

A study remembers its spec (study user attrs ``spec``, ``factors``,
``base_config``; names in ``harness.contract``). Running a spec against an
existing study continues it when the spec is the same or only adds tasks, seeds,
levels or search slots, and is refused otherwise (``spec.compare_specs``).
Optuna requires a parameter's CategoricalDistribution to be the same in every
trial of a study, so adding levels rewrites the study: its trials are copied to
``NAME.extending``, the study is re-created with the wider choices and the
trials copied back, then the copy is deleted. A run killed in the middle finds
the copy and finishes or undoes the rewrite.
"""

from __future__ import annotations

import difflib
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.contract import (BASE_CONFIG, CREATED_BY, EXTENSION_COPY_COMPLETE, FACTORS, OWNER_HOST, OWNER_PID, SPEC,
                              check_study_name)

from ..spec import SpecError, StudySpec, compare_specs, in_study_order, param_distributions
from ._errors import StorageError
from ._locks import study_lock

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

__all__ = ["EXTENDING_SUFFIX", "load_study", "prepare_study", "stored_spec", "study_names"]

EXTENDING_SUFFIX = ".extending"
"""Name suffix of the temporary copy a study extension makes."""


def study_names(storage: BaseStorage) -> list[str]:
    """Return the names of the studies in ``storage``, without extension copies in progress."""
    import optuna

    return [n for n in optuna.get_all_study_names(storage) if not n.endswith(EXTENDING_SUFFIX)]


def load_study(storage: BaseStorage, study_name: str | None) -> optuna.Study:
    """Return an existing study; with no name, the only study in the storage."""
    import optuna

    names = study_names(storage)
    if study_name is None:
        if len(names) != 1:
            listing = ", ".join(names) if names else "none"
            raise StorageError(f"name the study with --study-name (studies in this storage: {listing})")
        study_name = names[0]
    if study_name not in names:
        hint = difflib.get_close_matches(study_name, names, n=1)
        fix = f"; did you mean {hint[0]}?" if hint else f" (studies here: {', '.join(names) or 'none'})"
        raise StorageError(f"no study named {study_name!r} in this storage{fix}")
    return optuna.load_study(study_name=study_name, storage=storage)


def stored_spec(study: optuna.Study) -> StudySpec:
    """Return the spec a study was created from; raise SpecError for a study orca-ablate did not create."""
    spec = study.user_attrs.get(SPEC)
    if not isinstance(spec, Mapping):
        raise SpecError(f"study {study.study_name!r} was not created by orca-ablate run (it has no 'spec' "
                        "user attribute); choose another --study-name")
    return StudySpec.from_dict(spec, source=f"study {study.study_name!r}")


def prepare_study(storage: BaseStorage, spec: StudySpec, study_name: str) -> optuna.Study:
    """Return the study for ``spec``: created, resumed, or extended with new tasks, seeds or levels.

    Raises SpecError when the spec changes what the study's existing cells mean
    (factors, base, metric, search), or extends it while attempts are running.
    """
    import optuna

    try:
        check_study_name(study_name)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    _recover_extension(storage, study_name)
    study = optuna.create_study(storage=storage, study_name=study_name, direction=spec.direction,
                                load_if_exists=True)
    if SPEC not in study.user_attrs:
        if study.get_trials(deepcopy=False):
            stored_spec(study)  # raises: not ours
        _write_attrs(study, spec)
        return study
    old = stored_spec(study)
    compare_specs(old, spec, study_name, study.user_attrs.get(BASE_CONFIG))
    spec = in_study_order(old, spec)  # reordered levels are no change: the study keeps its order
    if old == spec:
        return study
    before, after = param_distributions(old), param_distributions(spec)
    if any(after[name] != dist for name, dist in before.items()):  # wider choices: rewrite the trials
        return _extend(storage, study, spec)
    _write_attrs(study, spec)
    return study


def _write_attrs(study: optuna.Study, spec: StudySpec) -> None:
    # "spec" is written last: its presence marks a study (or a rewritten copy) as complete.
    study.set_user_attr(FACTORS, spec.factor_paths)
    study.set_user_attr(BASE_CONFIG, spec.base_settings())
    study.set_user_attr(CREATED_BY, f"orca-ablate on {socket.gethostname()}")
    study.set_user_attr(SPEC, spec.to_dict())


def _extend(storage: BaseStorage, study: optuna.Study, spec: StudySpec) -> optuna.Study:
    """Return the study re-created with ``spec``'s wider choices and every existing trial.

    Holds the study lock (PostgreSQL), so no worker claims a cell between the check
    for running attempts and the rewrite.
    """
    with study_lock(storage, study._study_id):
        return _rewrite(storage, study, spec)


def _rewrite(storage: BaseStorage, study: optuna.Study, spec: StudySpec) -> optuna.Study:
    import optuna
    from optuna.trial import TrialState

    name = study.study_name
    trials = study.get_trials(deepcopy=True)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if running:
        owners = sorted({f"{t.user_attrs.get(OWNER_HOST)}:{t.user_attrs.get(OWNER_PID)}" for t in running})
        raise SpecError(f"spec adds tasks, seeds or levels to study {name!r}, which rewrites the study, but "
                        f"{len(running)} attempts are running (owners {', '.join(owners)}); let them finish, "
                        "then run again")
    backup = _copy_study(storage, study, name + EXTENDING_SUFFIX, trials)
    backup.set_user_attr(EXTENSION_COPY_COMPLETE, True)
    optuna.delete_study(study_name=name, storage=storage)
    choices = param_distributions(spec)
    for trial in trials:
        trial.distributions = {k: choices.get(k, d) for k, d in trial.distributions.items()}
    new = _copy_study(storage, backup, name, trials, spec_too=False)
    _write_attrs(new, spec)
    optuna.delete_study(study_name=backup.study_name, storage=storage)
    return new


def _copy_study(storage: BaseStorage, source: optuna.Study, name: str, trials: list[Any], *,
                spec_too: bool = True) -> optuna.Study:
    """Return a new study ``name`` holding ``trials`` and every user and system attr of ``source``.

    System attrs hold the study's artifacts (reports, figures) and dashboard notes;
    user attrs its artifact directory and Slurm submissions. ``spec`` is written last
    (its presence marks a complete copy), or not at all without ``spec_too``.
    """
    import optuna

    copy = optuna.create_study(storage=storage, study_name=name, directions=source.directions)
    copy.add_trials(trials)
    for key, value in storage.get_study_system_attrs(source._study_id).items():
        storage.set_study_system_attr(copy._study_id, key, value)
    attrs = {k: v for k, v in source.user_attrs.items() if k != EXTENSION_COPY_COMPLETE and (spec_too or k != SPEC)}
    for key in sorted(attrs, key=lambda k: k == SPEC):
        copy.set_user_attr(key, attrs[key])
    return copy


def _recover_extension(storage: BaseStorage, name: str) -> None:
    """Finish or undo an extension of study ``name`` that a killed run left half done."""
    import optuna

    backup = name + EXTENDING_SUFFIX
    names = optuna.get_all_study_names(storage)
    if backup not in names:
        return
    copy = optuna.load_study(study_name=backup, storage=storage)
    if not copy.user_attrs.get(EXTENSION_COPY_COMPLETE):
        optuna.delete_study(study_name=backup, storage=storage)  # the original was never touched
        return
    if name in names:
        if SPEC in optuna.load_study(study_name=name, storage=storage).user_attrs:
            optuna.delete_study(study_name=backup, storage=storage)  # the rewrite had finished
            return
        optuna.delete_study(study_name=name, storage=storage)
    _copy_study(storage, copy, name, copy.get_trials(deepcopy=True))
    optuna.delete_study(study_name=backup, storage=storage)
