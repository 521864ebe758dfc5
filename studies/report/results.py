"""The results of one study, as ``disent-study report`` reads them.

A study is found either by its directory (``study.json`` says where its MLflow run and Optuna
storage live) or by its MLflow experiment alone (``--experiment NAME --tracking-uri URI``): the
parent run (tagged ``study=<name>``, no parent of its own) holds the spec as ``spec.yaml``, and its
nested runs are the trials.

Where the trial table comes from:

- MLflow is the live source. Every trial's nested run holds its params (the flattened training
  config), its tags (method, seed, trial id, failure reason) and its metrics (the last value of each
  score is the final evaluation), and it is up to date while a study runs, after a crash and after
  ``resume``. The table is rebuilt from it in every case but one:
- a study directory whose parent run is FINISHED and whose ``results.parquet`` (written by the
  study when it stopped) lists exactly the trials MLflow holds: that file is the study's own record
  and is used as it is. A running, interrupted or resumed study never gets here, so a missing or
  stale file is never read.

Rebuilt rows carry the same disentanglement_lib-style columns as the study's own table, and the
``dataset_provenance`` each trial reported (``procedural``, or the real source files' SHA-256):
``train_config.<path>`` (lists as JSON text), ``evaluation_results.<metric>.<key>``,
``final.loss/<term>``, and ``search.<name>`` for every searched parameter, named as Optuna names it
(``beta_vae.beta``, ``model.latent_dim``, ``devae.betas``; a parameter inside the ``i``-th choice of
a categorical ``c`` is ``c[i].<path>``). A categorical or grid choice is recovered by matching the
trial's config against the spec's choices and is shown by its label: itself if it is a number, else
its text (a list as its JSON text, ``[1, 10, 40]``), so one column never mixes numbers and text.

Only completed trials enter the analysis; failed, running and stopped ones (a KILLED run: the study
stopped before the trial finished) are counted for the report's header and kept, with their status,
in the written ``results.parquet``.
"""

from __future__ import annotations

import ast
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from disent_core.errors import DisentError
from studies.results import (
    DATASET_PROVENANCE,
    EVALUATION,
    FINAL,
    METHOD_PROVENANCE,
    PARENT_TAG,
    POPULATION,
    SEARCH,
    STUDY_TAG,
    TRAIN_CONFIG,
    TRIAL_TAG,
    as_text,
    nested_runs,
    row_from_metrics,
)
from studies.spec import StudySpec, validate_spec
from studies.spec.params import (
    CategoricalParam,
    GridParam,
    LogFloatParam,
    LogIntParam,
    is_param,
    options_of,
    param_name,
    parse_param,
    walk,
)
from studies.spec.space import SearchSpace, label
from studies.study_dir import StudyState, default_tracking_uri, load_study_spec

COMPLETED, FAILED, RUNNING, STOPPED = "completed", "failed", "running", "stopped"
# MLflow run status -> trial status of the results table
_STATUS = {"FINISHED": COMPLETED, "FAILED": FAILED, "RUNNING": RUNNING, "SCHEDULED": RUNNING,
           "KILLED": STOPPED}


class ReportInputError(DisentError):
    """No such study directory, experiment, tracking store or parent run."""


@dataclass(frozen=True)
class SearchedParam:
    """One search parameter of a spec: its ``search.*`` column and how it was searched.

    ``log``: searched on a log scale (``log_float``, ``log_int``), or a numeric grid or choice of
    positive values that spans a factor of ``LOG_SPAN`` or more (beta 1, 4, 16): plotted on a log axis.
    """

    column: str
    log: bool
    categorical: bool
    numeric: bool  # categorical/grid: every choice is a number
    labels: tuple[Any, ...] = ()  # categorical/grid: the choices as the table shows them, in spec order


LOG_SPAN = 10
"""A numeric grid of positive values whose largest is this many times its smallest is drawn on a log axis."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def searched_params(spec: StudySpec) -> dict[str, list[SearchedParam]]:
    """Per method, the search parameters its trials have, in spec order (model, train, method).

    Args:
        spec: the study spec.

    Returns:
        Method name -> its searched parameters.
    """
    out: dict[str, list[SearchedParam]] = {}
    for method, template in spec.methods.items():
        found = []
        for prefix, section in (("model", spec.model), ("train", spec.train), (method, template)):
            for found_param in walk(section):
                name, param = param_name(prefix, found_param.path), parse_param(found_param.raw)
                categorical = isinstance(param, CategoricalParam | GridParam)
                options = options_of(param) if categorical else []
                numeric = all(_is_number(o) for o in options)
                labels = tuple(o if numeric else as_text(label(o)) for o in options)
                log = isinstance(param, LogFloatParam | LogIntParam) or (
                    categorical and numeric and min(options) > 0 and max(options) >= LOG_SPAN * min(options)
                )
                found.append(SearchedParam(f"{SEARCH}{name}", log, categorical, numeric, labels))
        out[method] = found
    return out


# --------------------------------------------------------------------------------------------------
# the table from MLflow


def _parse(text: str) -> Any:
    """An MLflow param (``str`` of a JSON-mode value) back to its value."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = value
    return nested


def _matches(option: Any, value: Any) -> bool:
    """Whether a resolved config value can have come from a categorical ``option`` of the spec."""
    if is_param(option):
        return True
    if isinstance(option, dict):
        return isinstance(value, dict) and all(k in value and _matches(o, value[k])
                                               for k, o in option.items())
    if isinstance(option, list):
        return (isinstance(value, list | tuple) and len(value) == len(option)
                and all(_matches(o, v) for o, v in zip(option, value, strict=True)))
    if _is_number(option):
        return _is_number(value) and math.isclose(option, value, rel_tol=1e-9, abs_tol=1e-12)
    return option == value


def _assign(template: Any, value: Any, prefix: str, out: dict[str, Any], path: tuple = ()) -> None:
    """Fill ``out`` with the search values a resolved config ``value`` took from ``template``."""
    if is_param(template):
        param = parse_param(template)
        if not isinstance(param, CategoricalParam | GridParam):
            out[param_name(prefix, path)] = value
            return
        for i, option in enumerate(options_of(param)):
            if _matches(option, value):
                out[param_name(prefix, path)] = label(option)
                _assign(option, value, prefix, out, (*path, i))
                return
    elif isinstance(template, dict) and isinstance(value, dict):
        for key, sub in template.items():
            if key in value:
                _assign(sub, value[key], prefix, out, (*path, key))
    elif isinstance(template, list) and isinstance(value, list):
        for i, (sub, item) in enumerate(zip(template, value, strict=False)):
            _assign(sub, item, prefix, out, (*path, i))


def search_values(spec: StudySpec, method: str, config: dict[str, Any]) -> dict[str, Any]:
    """``{"beta_vae.beta": 4.0, ...}``: the searched values of a trial, from its nested training config.

    Args:
        spec: the study spec.
        method: the trial's method.
        config: its nested training config (``model``, ``train`` and ``method`` sections).

    Returns:
        Optuna name -> value; a categorical or grid choice as its label.
    """
    out: dict[str, Any] = {}
    sections = (("model", "model", spec.model), ("train", "train", spec.train),
                ("method", method, spec.methods.get(method, {})))
    for section, prefix, template in sections:
        _assign(template, config.get(section, {}), prefix, out)
    return out


def _last_step(run: Any) -> int | None:
    steps = [m.step for m in run.data.to_proto().metrics]
    return max(steps) if steps else None


def trial_row(spec: StudySpec, run: Any) -> dict[str, Any]:
    """One row of the results table from a trial's nested MLflow run.

    Args:
        spec: the study spec.
        run: the trial's ``mlflow.entities.Run``.

    Returns:
        Column -> value: ``trial_id``, ``status``, ``error``, ``method``, ``seed``, ``population``
        (the ``population`` tag: the Tune trial a population member trained in; None for a trial of
        one member), ``step``, ``model_num``, ``method_provenance``, ``dataset_provenance``,
        ``mlflow_run_id``, then the namespaced columns (``row_from_metrics``).
    """
    tags, metrics = run.data.tags, run.data.metrics
    params = {k: _parse(v) for k, v in run.data.params.items()}
    method = tags.get("method") or str(params.get("method.name", "?"))
    model_num = tags.get("dlib_model_num")
    row: dict[str, Any] = {
        "trial_id": tags.get(TRIAL_TAG, run.info.run_id),
        "status": _STATUS.get(run.info.status, RUNNING),
        "error": tags.get("failure_reason"),
        "method": method,
        "seed": int(tags["seed"]) if tags.get("seed", "").isdigit() else None,
        POPULATION: tags.get(POPULATION) or None,
        "step": _last_step(run),
        "model_num": int(model_num) if model_num and model_num.isdigit() else None,
        METHOD_PROVENANCE: tags.get(METHOD_PROVENANCE),
        DATASET_PROVENANCE: tags.get(DATASET_PROVENANCE),
        "mlflow_run_id": run.info.run_id,
    }
    row.update(row_from_metrics(metrics, params, search_values(spec, method, _unflatten(params))))
    return row


def table_from_runs(spec: StudySpec, runs: list[Any]) -> pd.DataFrame:
    """The results table (one row per trial, every status) rebuilt from nested runs.

    Args:
        spec: the study spec.
        runs: the study's nested MLflow runs (``nested_runs``).

    Returns:
        One ``trial_row`` per run, in the runs' order.
    """
    return pd.DataFrame([trial_row(spec, run) for run in runs])


# --------------------------------------------------------------------------------------------------
# loading


@dataclass
class StudyResults:
    """A study's spec, its trials and where it is tracked; ``table`` holds the completed trials."""

    spec: StudySpec
    trials: pd.DataFrame
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    source: str
    study_dir: Path | None = None
    params: dict[str, list[SearchedParam]] = field(init=False)

    def __post_init__(self) -> None:
        self.params = searched_params(self.spec)
        self.trials = _normalise(self.trials, self.params)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def table(self) -> pd.DataFrame:
        """Completed trials only: what every analysis uses."""
        if self.trials.empty:
            return self.trials
        return self.trials[self.trials["status"] == COMPLETED].reset_index(drop=True)

    @property
    def counts(self) -> dict[str, int]:
        """Trials per status: completed, failed, running, stopped (the last three are left out)."""
        found = self.trials["status"].value_counts().to_dict() if not self.trials.empty else {}
        return {status: int(found.get(status, 0)) for status in (COMPLETED, FAILED, RUNNING, STOPPED)}

    @property
    def planned(self) -> int:
        """Trials the spec asks for: configurations x seeds."""
        return SearchSpace(self.spec).num_configurations() * len(self.spec.seeds)

    @property
    def metrics(self) -> list[str]:
        """The ``evaluation_results.*`` columns with at least one score among the completed trials."""
        table = self.table
        return [c for c in table.columns if c.startswith(EVALUATION)
                and pd.to_numeric(table[c], errors="coerce").notna().any()]

    def method_params(self, method: str) -> list[tuple[str, bool]]:
        """``[(search column, log scale)]`` of ``method`` that its completed trials vary.

        Args:
            method: the method.

        Returns:
            ``(search.* column, whether searched on a log scale)`` of each parameter with two or more
            distinct values among the method's completed trials, in spec order.
        """
        table = self.table
        rows = table[table["method"] == method] if not table.empty else table
        return [(p.column, p.log) for p in self.params.get(method, [])
                if p.column in rows.columns and rows[p.column].dropna().nunique() > 1]


def _normalise(trials: pd.DataFrame, params: dict[str, list[SearchedParam]]) -> pd.DataFrame:
    """Categorical columns with non-number choices as text, so no column mixes numbers and text;
    columns in one order whatever the source: trial fields, then each namespace sorted."""
    if trials.empty:
        return trials
    trials = trials.copy()
    for param in (p for ps in params.values() for p in ps):
        if param.column in trials.columns and param.categorical and not param.numeric:
            trials[param.column] = trials[param.column].map(as_text)
    namespaces = (TRAIN_CONFIG, SEARCH, EVALUATION, FINAL)
    first = [c for c in trials.columns if not str(c).startswith(namespaces)]
    rest = sorted((c for c in trials.columns if str(c).startswith(namespaces)),
                  key=lambda c: (next(i for i, n in enumerate(namespaces) if c.startswith(n)), c))
    return trials[first + rest]


def _client(tracking_uri: str) -> MlflowClient:
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise ReportInputError(f"no MLflow store at {db}; give the --tracking-uri the study used")
    return MlflowClient(tracking_uri)


def load_study_dir(directory: Path) -> StudyResults:
    """A study from its directory (see the module docstring for which table is used).

    Args:
        directory: the study directory, ``<root>/<study name>`` (``study.json``, ``spec.yaml``).

    Returns:
        The study's results, ``source`` ``"results.parquet"`` or ``"MLflow"``.

    Raises:
        ReportInputError: no such directory, no sqlite store at its tracking URI, or its parent run
            is not there.
        DisentError: the directory has no ``study.json``.
        ConfigError: its ``spec.yaml`` is not a valid spec.
    """
    directory = directory.expanduser().resolve()
    if not directory.is_dir():
        raise ReportInputError(f"no study directory {directory}; give the directory that `disent-study run` "
                               "created, <root>/<study name>, or --experiment NAME")
    state = StudyState.load(directory)
    spec = load_study_spec(directory)
    client = _client(state.tracking_uri)
    try:
        parent = client.get_run(state.parent_run_id)
    except MlflowException as exc:
        raise ReportInputError(f"the study's parent run {state.parent_run_id} is not in "
                               f"{state.tracking_uri}: {str(exc).splitlines()[0]}") from None
    runs = nested_runs(client, state.experiment_id, state.parent_run_id)
    parquet = directory / "results.parquet"
    if parent.info.status == "FINISHED" and parquet.is_file():
        table = pd.read_parquet(parquet)
        tracked = {r.data.tags.get(TRIAL_TAG) for r in runs}
        if "trial_id" in table.columns and set(table["trial_id"].astype(str)) == tracked:
            return StudyResults(spec, table, state.tracking_uri, state.experiment_id, state.parent_run_id,
                                "results.parquet", directory)
    return StudyResults(spec, table_from_runs(spec, runs), state.tracking_uri, state.experiment_id,
                        state.parent_run_id, "MLflow", directory)


def default_experiment_uri() -> str:
    """The tracking URI of ``disent-study run``'s default runs root ($DISENT_RUNS_ROOT, else ./runs)."""
    return default_tracking_uri(Path(os.environ.get("DISENT_RUNS_ROOT", "runs")).expanduser().resolve())


def load_experiment(name: str, tracking_uri: str | None = None) -> StudyResults:
    """A study from its MLflow experiment alone: the spec from the parent run, trials from nested runs.

    Args:
        name: the MLflow experiment's name.
        tracking_uri: the MLflow tracking URI (default: ``default_experiment_uri()``).

    Returns:
        The study's results (``source`` ``"MLflow"``, no ``study_dir``), from the newest study run.

    Raises:
        ReportInputError: no store or experiment, MLflow cannot be read, no study run, or no readable
            ``spec.yaml`` artifact.
        ConfigError: the ``spec.yaml`` is not a valid spec.
    """
    tracking_uri = tracking_uri or default_experiment_uri()
    client = _client(tracking_uri)
    try:
        experiment = client.get_experiment_by_name(name)
        known = [e.name for e in client.search_experiments(max_results=50) if e.name != "Default"]
    except MlflowException as exc:
        raise ReportInputError(f"cannot read MLflow at {tracking_uri}: {str(exc).splitlines()[0]}") from None
    if experiment is None:
        raise ReportInputError(f"no MLflow experiment {name!r} at {tracking_uri}; experiments there: "
                               + (", ".join(known) or "none"))
    parents = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{STUDY_TAG}` != '' and tags.`{PARENT_TAG}` IS NULL",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not parents:
        raise ReportInputError(f"experiment {name!r} has no study run (a run tagged {STUDY_TAG}=<name> "
                               "without a parent); was it written by `disent-study run`?")
    parent = parents[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            text = Path(client.download_artifacts(parent.info.run_id, "spec.yaml", tmp)).read_text()
    except (MlflowException, OSError) as exc:
        raise ReportInputError(f"the study run {parent.info.run_id} has no readable spec.yaml artifact: "
                               f"{str(exc).splitlines()[0]}") from None
    spec = validate_spec(yaml.safe_load(text), f"spec.yaml of run {parent.info.run_id}")
    runs = nested_runs(client, experiment.experiment_id, parent.info.run_id)
    return StudyResults(spec, table_from_runs(spec, runs), tracking_uri, experiment.experiment_id,
                        parent.info.run_id, "MLflow")
