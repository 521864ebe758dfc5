"""Statistics of a finished study's results table: tolerance, fronts, importances, claims.

The input is the study's results table (pandas): one row per completed trial with ``method``,
``seed``, ``search.<param>`` (the searched values) and ``evaluation_results.<metric>.<key>``
scores; metrics are named by column or by key (``mig.discrete_mig``). A *configuration* of a
method is one combination of its searched values, run once per seed, and scores m_c, the median
over its seeds. Nothing here reads files, plots or logs. The tolerance index of a method and
metric at threshold t (default 0.1):

    best  = max_c m_c,   W = {c : m_c >= best - t * |best|},   index = sum_{c in W} w_c
    (min_c and m_c <= best + t * |best| for a metric better low, ``metric_mode``)

with w_c the share of the searched (log-)range that setting c owns when one numeric parameter
varies, else 1 / (number of configurations), and a percentile bootstrap interval that resamples
each configuration's seeds. Also: the seed spread at the best setting, the variance of a metric
split into method, hyperparameter and seed shares (nested sums of squares), Pareto fronts,
Optuna's parameter importances, and the verdicts of ``report.claims``.

Choices of ours:
- a method with no varying parameter has index 1.0 (nothing was searched, so nothing mistuned);
- the variance shares are descriptive, not unbiased variance components;
- PED-ANOVA's target quantile is max(0.1, 2 / n_configs), so that two configurations form the top set.

docs/report.md ("Statistics") gives every definition: directions, weights, bootstrap, variance
shares, fronts, importances and claims.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from studies.results import EVALUATION, SEARCH
from studies.spec.claims import Claim, Term, metric_key

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

_MIN_PATTERN = re.compile(
    r"reconstruction_error|(^|[._])kl($|[._])|loss|total_correlation|wasserstein|mutual_info"
)
_EPS = 1e-12


# --------------------------------------------------------------------------------------------------
# columns and directions


def metric_mode(metric: str) -> Literal["max", "min"]:
    """Whether a score is better high or low (docs/report.md, "Direction").

    Args:
        metric: a column name or a metric key.

    Returns:
        ``"min"`` for reconstruction errors, KL terms, losses and dependence between latents,
        ``"max"`` for everything else.
    """
    return "min" if _MIN_PATTERN.search(metric_key(metric)) else "max"


def metric_column(table: pd.DataFrame, metric: str) -> str:
    """The table column of a metric given as a column name or as a key (``mig.discrete_mig``).

    Args:
        table: the results table.
        metric: a column name or a metric key.

    Returns:
        The column's name.

    Raises:
        KeyError: the table has no column for the metric (the message lists those it has).
    """
    for candidate in (metric, EVALUATION + metric_key(metric)):
        if candidate in table.columns:
            return candidate
    known = sorted(metric_key(c) for c in table.columns if str(c).startswith(EVALUATION))
    raise KeyError(f"no column for metric {metric!r}; the table has {', '.join(known) or 'no metrics'}")


def searched_params(table: pd.DataFrame, method: str) -> list[str]:
    """The searched columns of one method.

    Args:
        table: the results table.
        method: the method's name.

    Returns:
        The ``search.*`` columns with a value in some trial of ``method``, in table order.
    """
    rows = table[table["method"] == method]
    return [c for c in table.columns if str(c).startswith(SEARCH) and rows[c].notna().any()]


def _check_mode(mode: str, what: str) -> Literal["max", "min"]:
    if mode not in ("max", "min"):
        raise ValueError(f"{what} must be 'max' or 'min', got {mode!r}")
    return mode  # type: ignore[return-value]


def _numeric(values: pd.Series) -> pd.Series | None:
    """The values as floats when every present value is a number (not a bool), else None."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(present) or any(isinstance(v, bool | np.bool_) for v in present):
        return None
    converted = pd.to_numeric(present, errors="coerce")
    if converted.isna().any():
        return None
    return pd.to_numeric(values, errors="coerce").astype(float)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# --------------------------------------------------------------------------------------------------
# configurations of a method


@dataclass(frozen=True)
class Setting:
    """One configuration of a method: its searched columns and their values (NaN ones left out).

    Attributes:
        method: the method's name.
        values: ``(column, value)`` pairs, in table order.
    """

    method: str
    values: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        """The values as a dict.

        Returns:
            Column -> value.
        """
        return dict(self.values)


@dataclass
class _Groups:
    """A method's trials grouped by configuration, one value per seed and metric column."""

    method: str
    columns: tuple[str, ...]  # the varying searched columns (define the configurations)
    settings: list[Setting]
    weights: np.ndarray  # volume share of each configuration, sums to 1
    seeds: list[np.ndarray]
    samples: dict[str, list[np.ndarray]]  # metric column -> per configuration, aligned with seeds
    interval: bool  # one numeric parameter: weights are shares of the (log-)range

    @property
    def n_configs(self) -> int:
        return len(self.settings)

    @property
    def min_seeds(self) -> int:
        return min(len(s) for s in self.seeds)

    def draws(self, n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Seed indices per configuration, shape ``(n_boot, seeds)``, in configuration order."""
        return [rng.integers(0, len(s), size=(n_boot, len(s))) for s in self.seeds]

    def medians(self, column: str, draws: list[np.ndarray] | None = None) -> np.ndarray:
        """Configuration medians: shape ``(configs,)``, or ``(n_boot, configs)`` with draws."""
        values = self.samples[column]
        if draws is None:
            return np.array([np.median(v) for v in values])
        return np.stack([np.median(v[d], axis=1) for v, d in zip(values, draws, strict=True)], axis=1)

    def pooled_median(self, column: str, draws: list[np.ndarray] | None = None) -> float | np.ndarray:
        values = self.samples[column]
        if draws is None:
            return float(np.median(np.concatenate(values)))
        return np.median(np.concatenate([v[d] for v, d in zip(values, draws, strict=True)], axis=1), axis=1)


def _groups(
    table: pd.DataFrame, method: str, params: list[tuple[str, bool]], columns: list[str]
) -> _Groups | None:
    """The configurations of ``method`` (None when it has no trial with every metric in ``columns``)."""
    for required in ("method", "seed"):
        if required not in table.columns:
            raise KeyError(f"the results table has no {required!r} column")
    params = [(c, log) for c, log in params if c in table.columns]  # absent: no trial had it
    rows = table[table["method"] == method]
    scores = rows[columns].apply(pd.to_numeric, errors="coerce")
    keep = scores.notna().all(axis=1).to_numpy()
    rows, scores = rows[keep], scores[keep]
    if rows.empty:
        return None
    log_of = dict(params)
    names = [c for c, _ in params]
    varying = [c for c in names if rows[c].nunique(dropna=False) > 1]
    present = [c for c in names if rows[c].notna().any()]

    # one value per (configuration, seed): the mean of repeated trials
    keyed = scores.copy()
    key_columns = []
    for i, c in enumerate(varying):
        # NaN-safe, hashable keys; JSON text stays text
        keyed[f"__key{i}"] = rows[c].map(lambda v: "__nan__" if _missing(v) else v)
        key_columns.append(f"__key{i}")
    keyed["__seed"] = rows["seed"].to_numpy()
    first: dict[tuple, int] = {}  # configuration key -> position of its first row (for its values)
    for position, key in enumerate(keyed[key_columns].itertuples(index=False, name=None)):
        first.setdefault(key, position)
    per_seed = keyed.groupby([*key_columns, "__seed"], sort=False, dropna=False)[columns].mean()

    configs: dict[tuple, list[tuple[Any, np.ndarray]]] = {}
    for index, values in zip(per_seed.index, per_seed.to_numpy(), strict=True):
        index = index if isinstance(index, tuple) else (index,)
        configs.setdefault(tuple(index[:-1]), []).append((index[-1], values))

    interval = False
    order = list(configs)
    weights = np.full(len(order), 1.0 / len(order))
    if len(varying) == 1:
        numeric = _numeric(rows[varying[0]])
        if numeric is not None and numeric.notna().all():
            interval = True
            position = {key: float(key[0]) for key in order}
            order.sort(key=position.__getitem__)
            u = np.array([position[key] for key in order])
            if log_of[varying[0]]:
                if (u <= 0).any():
                    raise ValueError(
                        f"{varying[0]}: a log-scale parameter needs positive values, got {u.min()}"
                    )
                u = np.log(u)
            if len(u) > 1:
                edges = np.concatenate([u[:1], (u[:-1] + u[1:]) / 2, u[-1:]])
                weights = np.diff(edges) / (u[-1] - u[0])

    settings, seeds, samples = [], [], {c: [] for c in columns}
    for key in order:
        row = rows.iloc[first[key]]
        values = tuple((c, _scalar(row[c])) for c in present if not _missing(row[c]))
        settings.append(Setting(method, values))
        entries = sorted(configs[key], key=lambda e: e[0])
        seeds.append(np.array([_scalar(s) for s, _ in entries]))
        matrix = np.array([v for _, v in entries], dtype=float)
        for j, c in enumerate(columns):
            samples[c].append(matrix[:, j])
    return _Groups(method, tuple(varying), settings, weights, seeds, samples, interval)


def _index(medians: np.ndarray, weights: np.ndarray, mode: str, threshold: float) -> np.ndarray:
    """Tolerance index of configuration medians (last axis) (docs/report.md, "Tolerance index")."""
    if mode == "max":
        best = medians.max(axis=-1, keepdims=True)
        within = medians >= best - threshold * np.abs(best) - _EPS * np.maximum(1.0, np.abs(best))
    else:
        best = medians.min(axis=-1, keepdims=True)
        within = medians <= best + threshold * np.abs(best) + _EPS * np.maximum(1.0, np.abs(best))
    # one minus the weight outside: exactly 1 when every configuration is within
    return 1.0 - (~within).astype(float) @ weights


def _best(medians: np.ndarray, mode: str) -> np.ndarray:
    return medians.max(axis=-1) if mode == "max" else medians.min(axis=-1)


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if replicates.size == 0:
        raise ValueError("n_boot must be at least 1")
    alpha = 1.0 - confidence
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------------------------------
# response curves and tolerance


def curve(table: pd.DataFrame, *, method: str, metric: str, param: str) -> pd.DataFrame:
    """How ``metric`` responds to ``param`` for one method, pooled over the other parameters.

    Args:
        table: the results table.
        method: the method's name.
        metric: a column name or a metric key.
        param: the searched column (``search.<param>``).

    Returns:
        One row per distinct value of ``param`` among the method's trials (NaN values and NaN
        scores left out): ``setting`` (the value; a float for numeric parameters), ``median``,
        ``q25``, ``q75`` of the score and ``n`` (trials). Sorted by value, or by first appearance
        for non-numeric settings (JSON lists, schedules).

    Raises:
        KeyError: the table has no column for the metric, or no ``method`` column.
    """
    column = metric_column(table, metric)
    rows = table[table["method"] == method]
    rows = rows[rows[param].notna()]
    scores = pd.to_numeric(rows[column], errors="coerce")
    rows, scores = rows[scores.notna()], scores[scores.notna()]
    numeric = _numeric(rows[param])
    settings = numeric if numeric is not None else rows[param]
    out = []
    for value, group in scores.groupby(settings.to_numpy(), sort=numeric is not None):
        out.append(
            {
                "setting": _scalar(value),
                "median": float(group.median()),
                "q25": float(group.quantile(0.25)),
                "q75": float(group.quantile(0.75)),
                "n": int(group.size),
            }
        )
    frame = pd.DataFrame(out, columns=["setting", "median", "q25", "q75", "n"])
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class Tolerance:
    """The tolerance index of a method on a metric (docs/report.md, "Tolerance index").

    Attributes:
        method: the method's name.
        metric: the metric as given.
        index: the tolerance index, in [0, 1].
        ci_low: lower end of its bootstrap interval.
        ci_high: upper end of its bootstrap interval.
        best_median: the best configuration's median over seeds.
        best_config: the best configuration's searched values.
        seed_std_at_best: standard deviation (ddof 1) over the best configuration's seeds (NaN with one).
        n_configs: number of configurations.
        min_seeds: the fewest seeds of any configuration.
        params: the searched columns that vary, i.e. define the configurations.
        mode: ``"max"`` or ``"min"``, the metric's direction.
        interval: True when the index is a share of a numeric (log-)range, else of configurations.
    """

    method: str
    metric: str
    index: float
    ci_low: float
    ci_high: float
    best_median: float
    best_config: dict
    seed_std_at_best: float
    n_configs: int
    min_seeds: int
    params: tuple[str, ...]  # the searched columns that vary, i.e. define the configurations
    mode: str = "max"
    interval: bool = False  # True: index is a share of a numeric (log-)range, else of configurations


def tolerance(
    table: pd.DataFrame,
    *,
    method: str,
    metric: str,
    params: list[tuple[str, bool]],
    threshold: float = 0.1,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    mode: str | None = None,
) -> Tolerance:
    """The tolerance index of ``method`` on ``metric`` with its bootstrap interval.

    Definitions in docs/report.md ("Tolerance index", "Bootstrap", "Seed spread at the best
    setting").

    Args:
        table: the results table.
        method: the method's name.
        metric: a column name or a metric key.
        params: ``[(column, log_scale)]``, the method's searched columns.
        threshold: t, the relative distance from the best that still counts as within.
        n_boot: bootstrap replicates.
        confidence: the interval's coverage, in (0, 1).
        seed: seeds the bootstrap's generator.
        mode: ``"max"`` or ``"min"``; defaults to ``metric_mode(metric)``.

    Returns:
        The index, its interval, the best configuration and its seed spread.

    Raises:
        KeyError: the table has no column for the metric, or no ``method`` or ``seed`` column.
        ValueError: the method has no trial with the metric, a log-scale parameter has a value
            <= 0, or ``mode``, ``confidence`` or ``n_boot`` is invalid.
    """
    column = metric_column(table, metric)
    mode = _check_mode(mode or metric_mode(column), "mode")
    groups = _groups(table, method, params, [column])
    if groups is None:
        raise ValueError(f"no trial of method {method!r} has a value of {column}")
    medians = groups.medians(column)
    index = float(_index(medians, groups.weights, mode, threshold))
    best = int(np.argmax(medians) if mode == "max" else np.argmin(medians))
    draws = groups.draws(n_boot, np.random.default_rng(seed))
    replicates = _index(groups.medians(column, draws), groups.weights, mode, threshold)
    low, high = _interval(replicates, confidence)
    at_best = groups.samples[column][best]
    return Tolerance(
        method=method,
        metric=metric,
        index=index,
        ci_low=low,
        ci_high=high,
        best_median=float(medians[best]),
        best_config=groups.settings[best].as_dict(),
        seed_std_at_best=float(np.std(at_best, ddof=1)) if at_best.size > 1 else math.nan,
        n_configs=groups.n_configs,
        min_seeds=groups.min_seeds,
        params=groups.columns,
        mode=mode,
        interval=groups.interval,
    )


# --------------------------------------------------------------------------------------------------
# variance, correlation, fronts, importances


def variance_decomposition(table: pd.DataFrame, metric: str, params: list[str]) -> dict[str, float]:
    """Shares of the metric's sum of squares from method, hyperparameters and seed.

    Definitions in docs/report.md ("Variance decomposition").

    Args:
        table: the results table.
        metric: a column name or a metric key.
        params: the searched columns of all methods (columns absent from the table are ignored).

    Returns:
        ``{"method", "hyperparameters", "seed", "total_variance"}``; the shares sum to 1, and
        are all 0 with ``total_variance`` 0 for a constant metric (all NaN without any trial).

    Raises:
        KeyError: the table has no column for the metric, or no ``method`` column.
    """
    column = metric_column(table, metric)
    y = pd.to_numeric(table[column], errors="coerce")
    rows = table[y.notna() & table["method"].notna()]
    y = y[rows.index].to_numpy(dtype=float)
    if y.size == 0:
        return {"method": math.nan, "hyperparameters": math.nan, "seed": math.nan, "total_variance": math.nan}
    present = [c for c in params if c in rows.columns]
    keys = pd.DataFrame({"method": rows["method"].to_numpy()})
    for i, c in enumerate(present):
        keys[f"p{i}"] = rows[c].map(lambda v: "__nan__" if _missing(v) else v).to_numpy()
    method_id = keys.groupby("method", sort=False).ngroup().to_numpy()
    config_id = keys.groupby(list(keys.columns), sort=False, dropna=False).ngroup().to_numpy()

    def group_means(ids: np.ndarray) -> np.ndarray:
        return (np.bincount(ids, weights=y) / np.bincount(ids))[ids]

    grand = y.mean()
    method_mean, config_mean = group_means(method_id), group_means(config_id)
    ss_method = float(np.sum((method_mean - grand) ** 2))
    ss_config = float(np.sum((config_mean - method_mean) ** 2))
    ss_seed = float(np.sum((y - config_mean) ** 2))
    total = ss_method + ss_config + ss_seed
    # a constant metric: no variance to share (the parts are rounding noise)
    if total <= _EPS * max(1.0, float(np.sum(y**2))):
        return {"method": 0.0, "hyperparameters": 0.0, "seed": 0.0, "total_variance": 0.0}
    return {
        "method": ss_method / total,
        "hyperparameters": ss_config / total,
        "seed": ss_seed / total,
        "total_variance": total / y.size,
    }


def spearman(table: pd.DataFrame, metrics: list[str], *, min_periods: int = 3) -> pd.DataFrame:
    """Spearman rank correlation between metrics over all trials.

    Args:
        table: the results table.
        metrics: column names or metric keys.
        min_periods: the fewest trials with both scores that give a correlation.

    Returns:
        The correlation matrix, labelled as ``metrics`` given (pairwise complete; NaN when a pair
        has fewer than ``min_periods`` trials or a metric is constant).

    Raises:
        KeyError: the table has no column for a metric.
    """
    columns = [metric_column(table, m) for m in metrics]
    values = pd.DataFrame(
        {m: pd.to_numeric(table[c], errors="coerce") for m, c in zip(metrics, columns, strict=True)}
    )
    return values.corr(method="spearman", min_periods=min_periods)


def pareto_front(
    table: pd.DataFrame,
    *,
    x: str,
    y: str,
    x_mode: str | None = None,
    y_mode: str | None = None,
    by: str | None = None,
) -> pd.Index:
    """The rows no other row dominates on ``(x, y)`` (rows with NaN on either are left out).

    Args:
        table: the results table.
        x: the first axis, a column name or a metric key.
        y: the second axis, a column name or a metric key.
        x_mode: ``"max"`` or ``"min"``; defaults to ``metric_mode`` of the column.
        y_mode: ``"max"`` or ``"min"``; defaults to ``metric_mode`` of the column.
        by: a column (e.g. ``"method"``): the union of the fronts computed within each group.

    Returns:
        The labels of the rows on the front, in the table's row order.

    Raises:
        KeyError: the table has no column for ``x``, ``y`` or ``by``.
        ValueError: a mode other than ``"max"`` or ``"min"``.
    """
    x_column, y_column = metric_column(table, x), metric_column(table, y)
    sx = 1.0 if _check_mode(x_mode or metric_mode(x_column), "x_mode") == "max" else -1.0
    sy = 1.0 if _check_mode(y_mode or metric_mode(y_column), "y_mode") == "max" else -1.0
    points = pd.DataFrame(
        {
            "x": sx * pd.to_numeric(table[x_column], errors="coerce"),
            "y": sy * pd.to_numeric(table[y_column], errors="coerce"),
        },
        index=table.index,
    )
    if by is not None:
        points["group"] = table[by].to_numpy()
    points = points.dropna(subset=["x", "y"])
    chunks = [points] if by is None else [g for _, g in points.groupby("group", sort=False, dropna=False)]
    on_front: set = set()
    for chunk in chunks:
        on_front.update(_front(chunk["x"].to_numpy(), chunk["y"].to_numpy(), chunk.index))
    return pd.Index([label for label in table.index if label in on_front])


def _front(x: np.ndarray, y: np.ndarray, labels: pd.Index) -> list:
    """Labels of the non-dominated points, both axes maximised (a sweep in decreasing x)."""
    order = np.lexsort((-y, -x))
    out, best_y, i = [], -np.inf, 0
    while i < order.size:
        j = i
        while j < order.size and x[order[j]] == x[order[i]]:
            j += 1
        top = y[order[i]]  # the largest y among the points sharing this x
        if top > best_y:
            out.extend(labels[k] for k in order[i:j] if y[k] == top)
            best_y = top
        i = j
    return out


def importances(
    table: pd.DataFrame,
    *,
    method: str,
    metric: str,
    params: list[tuple[str, Any]],
    mode: str | None = None,
    min_configs: int = 4,
    evaluator: Literal["ped_anova", "fanova"] = "ped_anova",
    seed: int = 0,
) -> dict[str, float]:
    """Optuna's parameter importances of ``method`` for ``metric`` (docs/report.md, "Importances").

    Numeric columns become ``FloatDistribution(min, max, log=log_scale)``, others
    ``CategoricalDistribution`` of their text. Each configuration is one trial valued at its median
    over seeds; a parameter NaN in a configuration is absent from that trial (conditional).

    Args:
        table: the results table.
        method: the method's name.
        metric: a column name or a metric key.
        params: ``[(column, log_scale)]`` as for ``tolerance``, or ``[(column, distribution)]`` with
            an Optuna distribution to use as is.
        mode: ``"max"`` or ``"min"``; defaults to ``metric_mode``.
        min_configs: the fewest configurations that give importances (at least 3 in any case).
        evaluator: ``"ped_anova"`` (deterministic) or ``"fanova"`` (seeded).
        seed: fANOVA's seed.

    Returns:
        Column -> importance, normalised to sum 1, largest first. Empty when fewer than two
        parameters vary or fewer than ``max(min_configs, 3)`` configurations exist.

    Raises:
        KeyError: the table has no column for the metric, or no ``method`` or ``seed`` column.
        ValueError: an invalid ``mode`` or ``evaluator``, or a log-scale parameter with a value <= 0.
    """
    import optuna
    from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

    column = metric_column(table, metric)
    mode = _check_mode(mode or metric_mode(column), "mode")
    given = {c: spec for c, spec in params}
    log_flags = [(c, s if isinstance(s, bool) else False) for c, s in params]
    groups = _groups(table, method, log_flags, [column])
    if groups is None or len(groups.columns) < 2 or groups.n_configs < max(min_configs, 3):
        return {}
    rows = table[table["method"] == method]
    distributions: dict[str, BaseDistribution] = {}
    labels: dict[str, Any] = {}
    for c in groups.columns:
        spec = given[c]
        if isinstance(spec, BaseDistribution):
            distributions[c] = spec
            continue
        numeric = _numeric(rows[c])
        if numeric is not None:
            low, high = float(numeric.min()), float(numeric.max())
            if spec and low <= 0:
                raise ValueError(f"{c}: a log-scale parameter needs positive values, got {low}")
            distributions[c] = FloatDistribution(low, high, log=bool(spec))
            labels[c] = float
        else:
            choices = tuple(dict.fromkeys(str(v) for v in rows[c] if not _missing(v)))
            distributions[c] = CategoricalDistribution(choices)
            labels[c] = str
    values = groups.medians(column)
    trials = []
    for setting, value in zip(groups.settings, values, strict=True):
        config = setting.as_dict()
        chosen = {c: labels.get(c, lambda v: v)(config[c]) for c in groups.columns if c in config}
        trials.append(
            optuna.trial.create_trial(
                params=chosen, distributions={c: distributions[c] for c in chosen}, value=float(value)
            )
        )
    logger = logging.getLogger("optuna")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
        study.add_trials(trials)
        if evaluator == "ped_anova":
            quantile = min(max(0.1, 2.0 / len(trials)), 0.5)
            chosen_evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
        elif evaluator == "fanova":
            chosen_evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        else:
            raise ValueError(f"evaluator must be 'ped_anova' or 'fanova', got {evaluator!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optuna.importance.get_param_importances(study, evaluator=chosen_evaluator)
    finally:
        logger.setLevel(level)
    return {k: float(v) for k, v in result.items()}


# --------------------------------------------------------------------------------------------------
# claims


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one claim (docs/report.md, "Claims").

    Attributes:
        text: the claim as written.
        lhs: the left side's statistic (NaN when it cannot be measured).
        rhs: the right side's statistic or number (NaN when it cannot be measured).
        difference: lhs - rhs.
        ci_low: lower end of the bootstrap interval of the difference (NaN when not measured).
        ci_high: upper end of the bootstrap interval of the difference (NaN when not measured).
        verdict: "supported", "not supported" or "not enough trials".
        detail: both sides with their intervals, the difference, and any problem.
    """

    text: str
    lhs: float
    rhs: float
    difference: float
    ci_low: float
    ci_high: float
    verdict: Literal["supported", "not supported", "not enough trials"]
    detail: str


def _statistic(
    term: Term, groups: _Groups, column: str, threshold: float, draws: list[np.ndarray] | None = None
) -> Any:
    mode = metric_mode(term.metric)
    if term.statistic == "median":
        return groups.pooled_median(column, draws)
    medians = groups.medians(column, draws)
    if term.statistic == "best":
        return _best(medians, mode)
    return _index(medians, groups.weights, mode, threshold)


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.3g}"


def _described(term: Term, point: float, replicates: np.ndarray, confidence: float) -> str:
    low, high = _interval(replicates, confidence)
    return f"{term} = {_fmt(point)} [{_fmt(low)}, {_fmt(high)}]"


def check_claim(
    claim: Claim,
    table: pd.DataFrame,
    *,
    params: dict[str, list[tuple[str, bool]]],
    threshold: float = 0.1,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    min_seeds: int = 3,
    min_configs: int = 2,
) -> ClaimResult:
    """Measure both sides of a claim, bootstrap their difference and give a verdict.

    Definitions in docs/report.md ("Claims", "Bootstrap").

    Args:
        claim: the parsed claim (``studies.spec.claims``).
        table: the results table.
        params: each method's ``[(column, log_scale)]``; a method missing from it gets its
            ``searched_params`` columns on a linear scale.
        threshold: t of the tolerance index.
        n_boot: bootstrap replicates.
        confidence: the interval's coverage, in (0, 1).
        seed: seeds the bootstrap's generator.
        min_seeds: the fewest seeds per configuration for a verdict other than "not enough trials".
        min_configs: the fewest configurations for a verdict on a ``tolerance`` side.

    Returns:
        Both sides, the interval of their difference and the verdict.

    Raises:
        KeyError: the table has no ``method`` or ``seed`` column.
        ValueError: a log-scale parameter with a value <= 0, or (when both sides are measured) an
            invalid ``confidence`` or ``n_boot``.
    """
    terms = [claim.lhs] + ([claim.rhs] if isinstance(claim.rhs, Term) else [])
    columns: dict[str, list[str]] = {}
    problems: list[str] = []
    column_of: dict[Term, str] = {}
    for term in terms:
        try:
            column_of[term] = metric_column(table, term.metric)
        except KeyError:
            problems.append(f"no trial has {term.metric}")
            continue
        columns.setdefault(term.method, [])
        if column_of[term] not in columns[term.method]:
            columns[term.method].append(column_of[term])
    groups: dict[str, _Groups | None] = {}
    for method, needed in columns.items():
        method_params = params.get(method)
        if method_params is None:
            method_params = [(c, False) for c in searched_params(table, method)]
        groups[method] = _groups(table, method, method_params, needed)
    for term in terms:
        if term not in column_of:
            continue
        g = groups.get(term.method)
        if g is None:
            problems.append(f"{term.method}: no trial with {term.metric}")
            continue
        if g.min_seeds < min_seeds:
            problems.append(f"{term.method}: {g.min_seeds} seed(s) per configuration, need {min_seeds}")
        if term.statistic == "tolerance" and g.n_configs < min_configs:
            problems.append(f"{term.method}: {g.n_configs} configuration(s), need {min_configs}")
    problems = list(dict.fromkeys(problems))

    measurable = all(term in column_of and groups.get(term.method) is not None for term in terms)
    if not measurable:
        lhs = rhs = low = high = math.nan
        if claim.lhs in column_of and groups.get(claim.lhs.method) is not None:
            lhs = float(_statistic(claim.lhs, groups[claim.lhs.method], column_of[claim.lhs], threshold))
        if isinstance(claim.rhs, Term):
            if claim.rhs in column_of and groups.get(claim.rhs.method) is not None:
                rhs = float(_statistic(claim.rhs, groups[claim.rhs.method], column_of[claim.rhs], threshold))
        else:
            rhs = float(claim.rhs)
        detail = "; ".join(problems)
        return ClaimResult(claim.text, lhs, rhs, lhs - rhs, low, high, "not enough trials", detail)

    rng = np.random.default_rng(seed)
    draws = {method: groups[method].draws(n_boot, rng) for method in columns}  # one resampling per method

    def measure(term: Term) -> tuple[float, np.ndarray]:
        g = groups[term.method]
        point = float(_statistic(term, g, column_of[term], threshold))
        replicates = _statistic(term, g, column_of[term], threshold, draws[term.method])
        return point, np.asarray(replicates, dtype=float)

    lhs, lhs_boot = measure(claim.lhs)
    if isinstance(claim.rhs, Term):
        rhs, rhs_boot = measure(claim.rhs)
    else:
        rhs, rhs_boot = float(claim.rhs), np.full(n_boot, float(claim.rhs))
    low, high = _interval(lhs_boot - rhs_boot, confidence)
    holds = {">": low > 0, ">=": low >= 0, "<": high < 0, "<=": high <= 0}[claim.op]
    claimed_above = claim.op in (">", ">=")
    if holds:
        where = f"lies {'above' if claimed_above else 'below'} 0"
    elif (claimed_above and high < 0) or (not claimed_above and low > 0):
        where = f"lies {'below' if claimed_above else 'above'} 0: the opposite holds"
    else:
        where = "includes 0"
    percent = f"{100 * confidence:g}%"
    sides = [_described(claim.lhs, lhs, lhs_boot, confidence)]
    if isinstance(claim.rhs, Term):
        sides.append(_described(claim.rhs, rhs, rhs_boot, confidence))
    difference = f"difference {_fmt(lhs - rhs)}, {percent} CI [{_fmt(low)}, {_fmt(high)}] {where}"
    detail = f"{'; '.join(sides)}; {difference}"
    if problems:
        return ClaimResult(claim.text, lhs, rhs, lhs - rhs, low, high, "not enough trials",
                           "; ".join(problems) + f" ({detail})")
    verdict: Literal["supported", "not supported"] = "supported" if holds else "not supported"
    return ClaimResult(claim.text, lhs, rhs, lhs - rhs, low, high, verdict, detail)
