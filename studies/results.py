"""The results schema of a study: the keys a trial reports and the columns of its results table.

Every module that writes or reads a trial's results uses these names: the trainable (what a Tune
result holds), the tracker (what goes to MLflow), the runner (the table written when a study stops)
and the report (the same table rebuilt from MLflow, ``nested_runs``).

Keys of a trial's report (a Tune result, and MLflow metrics and tags):

- training series: ``loss/<term>``, ``kl/<i>``, ``schedule/<name>``, ``images_per_sec``,
  ``active_dims``;
- placement: ``resources/<name>`` (not tracked);
- scores: ``<metric>.<key>`` (a key with a dot, e.g. ``mig.discrete_mig``), present when
  ``evaluated`` is 1;
- bookkeeping: ``step``, ``evaluated``, ``diverged`` and ``dataset_provenance`` (``procedural`` or
  the real files' SHA-256), which the tracker records as a tag; a member of a population that
  diverged also reports ``failure``, the reason (a one-member trial raises it instead).

A population trial (``resources.population`` above 1) reports its members' results under
``members`` (``studies/orchestration/members.py``), each with exactly the keys above.

Columns of the results table (one row per trial), after the trial fields (``trial_id``,
``status``, ``error``, ``method``, ``seed``, ``step``, ``model_num``, ``method_provenance``,
``dataset_provenance``): ``train_config.<path>`` (the flattened training config),
``search.<name>`` (the searched values), ``evaluation_results.<metric>.<key>`` (the last scores),
``final.loss/<term>`` (the last training losses) and ``final.active_dims``; ``population`` is the
Tune trial a member trained in beside others (empty for a trial of one member), also its run's tag.
Parquet stores one type per column, so lists and mappings are JSON text (``cell``) and a column
mixing text with numbers holds every value as text (``as_text``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

LOSS, KL, INFO, SCHEDULE = "loss/", "kl/", "info/", "schedule/"
"""Training series: loss terms, the KL of each latent dimension (``kl/<d>``; a method without a KL,
DiD, reports its information bound as ``info/<d>``), schedule values."""
RESOURCES, CONFIG = "resources/", "config/"
TRAINING_PREFIXES = (LOSS, KL, INFO, SCHEDULE)
IMAGES_PER_SEC, ACTIVE_DIMS = "images_per_sec", "active_dims"
TRAINING_KEYS = (IMAGES_PER_SEC, ACTIVE_DIMS)
STEP, EVALUATED, DIVERGED = "step", "evaluated", "diverged"
FAILURE = "failure"
"""A diverged population member's reason (``Diverged: training diverged at step ...``)."""
POPULATION = "population"
"""Results column and MLflow tag: the Tune trial id of the population a member trained in."""
DATASET_PROVENANCE = "dataset_provenance"
CHECKPOINT_SCORE = "checkpoint_score"
"""Under ``storage.keep_checkpoints: best``: the first objective where this report evaluated it, else NaN;
what Tune ranks the checkpoints by (not tracked in MLflow, not a column of the results table)."""
METHOD_PROVENANCE = "method_provenance"
"""How faithful the method is to published code (``Method.provenance``: DiD is a reconstruction)."""

TRAIN_CONFIG, SEARCH, EVALUATION, FINAL = "train_config.", "search.", "evaluation_results.", "final."

PARENT_TAG = "mlflow.parentRunId"
"""MLflow tag of a trial's run: the study's parent run."""
TRIAL_TAG = "trial_id"
STUDY_TAG = "study"
_NOT_SCORES = (*TRAINING_PREFIXES, RESOURCES, CONFIG)


def is_training_key(key: str) -> bool:
    """A training series: a loss term, a KL, a schedule value, images/s or active dimensions.

    Args:
        key: a key of a trial's report (``loss/recon``, ``mig.discrete_mig``, ...).

    Returns:
        Whether it starts with ``loss/``, ``kl/``, ``info/`` or ``schedule/``, or is ``images_per_sec``
        or ``active_dims``.
    """
    return key.startswith(TRAINING_PREFIXES) or key in TRAINING_KEYS


def is_score_key(key: str) -> bool:
    """An evaluation score: ``<metric>.<key>`` (a dot), not a training or placement key.

    Args:
        key: a key of a trial's report.

    Returns:
        Whether it has a dot and no training, ``resources/`` or ``config/`` prefix.
    """
    return "." in key and not key.startswith(_NOT_SCORES)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool.

    Args:
        value: any value.

    Returns:
        Whether it is one.
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def row_from_metrics(
    metrics: Mapping[str, Any], params: Mapping[str, Any], searched: Mapping[str, Any]
) -> dict[str, Any]:
    """The namespaced columns of one trial's row.

    Args:
        metrics: the trial's last reported values (a Tune result, or an MLflow run's metrics).
        params: the flattened training config (``TrainConfig.flat_params``).
        searched: the searched values by Optuna name.

    Returns:
        ``train_config.*``, ``search.*``, ``evaluation_results.*`` (numeric scores),
        ``final.loss/*`` and ``final.active_dims`` columns, cells made parquet-safe.
    """
    row = {f"{TRAIN_CONFIG}{k}": cell(v) for k, v in params.items()}
    row.update({f"{SEARCH}{k}": cell(v) for k, v in searched.items()})
    row.update({f"{EVALUATION}{k}": v for k, v in metrics.items()
                if is_score_key(k) and isinstance(v, int | float) and not isinstance(v, bool)})
    row.update({f"{FINAL}{k}": v for k, v in metrics.items() if k.startswith(LOSS) or k == ACTIVE_DIMS})
    return row


def cell(value: Any) -> Any:
    """A parquet-safe cell: lists, tuples and mappings as JSON text, anything else as it is.

    Args:
        value: a cell value (a config or search value).

    Returns:
        ``json.dumps(value)`` for a list, tuple or dict, else ``value`` itself.
    """
    return json.dumps(value) if isinstance(value, list | dict | tuple) else value


def as_text(value: Any) -> Any:
    """A value as the text a text column holds (JSON: ``5000`` -> ``"5000"``, ``True`` -> ``"true"``,
    ``[1, 10]`` -> ``"[1, 10]"``); text and missing values stay as they are.

    Args:
        value: a cell of a column that holds text.

    Returns:
        ``value`` itself if it is a ``str``, ``None`` or a float NaN, else ``json.dumps(value)``.
    """
    if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
        return value
    return json.dumps(value)


def one_type_per_column(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every column that mixes text and other values held as text (``as_text``).

    Args:
        table: a results table.

    Returns:
        The same table (changed in place), which parquet can store.
    """
    for column in table.columns:
        kinds = {isinstance(v, str) for v in table[column].dropna()}
        if len(kinds) > 1:
            table[column] = table[column].map(as_text)
    return table


def nested_runs(client: Any, experiment_id: str, parent_run_id: str, status: str | None = None) -> list[Any]:
    """Every nested run (trial) of a study's parent run, oldest first, paged: a study may have
    thousands.

    Args:
        client: the study's MLflow client.
        experiment_id: the study's experiment.
        parent_run_id: the study's parent run.
        status: only runs in this status (``RUNNING``, ``FINISHED``, ...); None: every run.

    Returns:
        The MLflow runs.
    """
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'"
    if status is not None:
        query += f" and attributes.status = '{status}'"
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=1000,
                                  order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs
