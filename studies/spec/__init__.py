"""The study spec language: one YAML file that describes a whole experiment.

- ``model``: the spec (``StudySpec``), read and validated by ``load_spec`` / ``validate_spec``
  before anything starts, every problem at its YAML path;
- ``params``: the search-parameter language (``{search: float | grid | ...}``), its walker and the
  Optuna name of each parameter;
- ``space``: the spec as an Optuna define-by-run space, its grid, and each trial's training config;
- ``claims``: the grammar of ``report.claims``;
- ``overrides``: ``--set KEY=VALUE``.
"""

from studies.spec.model import StudySpec, load_spec, spec_yaml, validate_spec

__all__ = ["StudySpec", "load_spec", "spec_yaml", "validate_spec"]
