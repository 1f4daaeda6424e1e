"""Study specs: YAML -> validated frozen dataclasses -> the grid of cells a study runs.

- ``_types``: factors, search dimensions, the names a spec may use, ``SpecError``;
- ``_hypotheses``: the ``analysis:`` settings and ``hypotheses:`` (the contract ``analysis`` reads back);
- ``_parser``: a parsed YAML mapping -> the validated fields of a spec (errors name the path and the fix);
- ``_model``: ``StudySpec`` (``from_dict``/``to_dict``);
- ``_load``: spec files and the specs shipped in ``studies/specs/``;
- ``_cells``: the (task, levels, seed, slot) cells of a spec, each a ``TrialConfig``;
- ``_compare``: whether a spec may continue an existing study.

Imports go one way: ``_types`` <- ``_hypotheses`` <- ``_parser`` <- ``_model`` <- ``_load``, ``_cells``, ``_compare``.
No module here imports Optuna at module level.
"""

from __future__ import annotations

from ._cells import Cell, cell_key, expand_cells, param_distributions
from ._compare import compare_specs, in_study_order
from ._hypotheses import HYPOTHESIS_KINDS, AnalysisSettings, Hypothesis
from ._load import load_spec, shipped_specs
from ._model import StudySpec
from ._parser import DEFAULT_TRIAL_FN, SpecParser
from ._types import DIRECTIONS, METRICS, SAMPLERS, AdaptiveSeeds, Factor, Scalar, SearchDimension, SpecError, Validator

__all__ = [
    "DEFAULT_TRIAL_FN", "DIRECTIONS", "METRICS", "SAMPLERS", "AdaptiveSeeds", "Cell", "Factor", "Scalar", "SearchDimension", "SpecError", "SpecParser",
    "StudySpec", "Validator", "cell_key", "compare_specs", "expand_cells", "in_study_order", "load_spec",
    "param_distributions", "shipped_specs",
]
