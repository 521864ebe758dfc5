"""Assemble a study report: analysis, figures, HTML and the results table, written into one folder.

``write_report(results, out)`` needs nothing but a ``StudyResults`` (no MLflow, no Ray), so the
benchmark times exactly what the command does. The folder gets::

    report.html        self-contained: inline CSS, figures as embedded PNG, no scripts
    figures/*.png|svg  every figure of the report, both formats
    results.parquet    one row per trial of every status (``status`` column), namespaced columns

Which metrics: the main score of each evaluated metric (``claims.MAIN_KEYS``: MIG, DCI
disentanglement, FactorVAE accuracy, SAP, reconstruction error, ...) followed by the objectives;
every other score is in ``results.parquet``. Reconstruction against disentanglement uses the held-out
``reconstruction.reconstruction_error`` when it was evaluated, else the final training
reconstruction loss.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from studies.report import analysis, figures, html, paper
from studies.report.figures import FigureWriter, SavedFigure
from studies.report.results import StudyResults
from studies.results import EVALUATION
from studies.spec import claims

RECON_EVALUATED = "evaluation_results.reconstruction.reconstruction_error"
RECON_TRAINING = "final.loss/recon"
MAX_SETTINGS = 12  # a numeric parameter with more distinct values is binned for its curves
CURVE_BINS = 8


@dataclass
class Report:
    """Everything the HTML page shows, computed from one ``StudyResults``."""

    results: StudyResults
    metrics: list[str]
    figures: list[SavedFigure] = field(default_factory=list)
    tolerances: list[analysis.Tolerance] = field(default_factory=list)
    claims: list[analysis.ClaimResult] = field(default_factory=list)
    importances: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    variance: dict[str, dict[str, float]] = field(default_factory=dict)
    spearman: pd.DataFrame | None = None
    devae: paper.Comparison | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def note(self, section: str, text: str) -> None:
        """Add a note shown at the end of a section of the page.

        Args:
            section: a section key of ``html.SECTIONS`` (``curves``, ``pareto``, ...) or ``header``.
            text: the note, plain text.
        """
        self.notes.setdefault(section, []).append(text)

    def section_figures(self, section: str) -> list[SavedFigure]:
        """The figures of one section, in the order they were saved.

        Args:
            section: a section key (``SavedFigure.section``).

        Returns:
            Those figures.
        """
        return [f for f in self.figures if f.section == section]


def headline_metrics(results: StudyResults) -> list[str]:
    """The main score of each evaluated metric, then the objectives, as table columns that have scores.

    Args:
        results: the study's results.

    Returns:
        ``evaluation_results.<metric>.<key>`` columns, without duplicates; every column of
        ``results.metrics`` when none of them has a score.
    """
    present = set(results.metrics)
    keys = [claims.MAIN_KEYS[m] for m in results.spec.evaluation.metrics if m in claims.MAIN_KEYS]
    keys += [o.metric for o in results.spec.objectives]
    chosen = [c for c in dict.fromkeys(EVALUATION + k for k in keys) if c in present]
    return chosen or results.metrics


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def binned(rows: pd.DataFrame, param: str, log: bool) -> tuple[pd.DataFrame, bool]:
    """``rows`` with a numeric ``param`` of more than ``MAX_SETTINGS`` values replaced by the median value
    of its quantile bin (``CURVE_BINS`` bins, of the log for a log-scale parameter); whether it binned.

    A random or TPE search gives each configuration its own value, so a curve through every value
    would show one configuration per point; bins pool neighbouring configurations instead.

    Args:
        rows: trials of one method (rows of the results table).
        param: a ``search.*`` column of ``rows``.
        log: whether ``param`` was searched on a log scale (non-positive values then get no bin).

    Returns:
        ``rows`` (a copy with ``param`` replaced when binned, else ``rows`` itself) and whether it binned.
    """
    values = pd.to_numeric(rows[param], errors="coerce")
    if values.nunique() <= MAX_SETTINGS:
        return rows, False
    position = np.log(values.where(values > 0)) if log else values
    codes = pd.qcut(position, CURVE_BINS, labels=False, duplicates="drop")
    return rows.assign(**{param: codes.map(values.groupby(codes).median())}), True


def _curves(report: Report, writer: FigureWriter) -> None:
    results, table = report.results, report.results.table
    methods = list(results.spec.methods)
    for method in methods:
        varying = results.method_params(method)
        if not varying:
            report.note("curves", f"{method}: no searched parameter varies among its completed trials")
        labels = {p.column: p.labels for p in results.params[method] if p.categorical and not p.numeric}
        rows = table[table["method"] == method]
        for param, log in varying:
            pooled, was_binned = binned(rows, param, log)
            found, points = {}, {}
            for metric in report.metrics:
                frame = analysis.curve(pooled, method=method, metric=metric, param=param)
                if param in labels:  # list and schedule choices in the spec's order
                    order = {v: i for i, v in enumerate(labels[param])}
                    frame = frame.sort_values("setting", key=lambda s, o=order: s.map(o), ignore_index=True)
                if not frame.empty:
                    found[metric] = frame
                    points[metric] = (pd.to_numeric(rows[param], errors="coerce").to_numpy(dtype=float),
                                      pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float))
            if not found:
                continue
            fig = figures.curves(found, method=method, param=param, log=log, points=points,
                                 color=figures.method_color(methods, method))
            label = figures.param_label(param, method)
            where = (f"in {CURVE_BINS} quantile bins of {label} (x: the bin's median value)" if was_binned
                     else "at each setting")
            writer.save(fig, f"curves_{_slug(method)}_{_slug(label)}", "curves", f"{method}: {label}",
                        f"Each metric against {label} for {method}: median over trials {where}, other "
                        "parameters and seeds pooled; band: 25th to 75th percentile; dots: the trials"
                        + ("; log axis, searched on a log scale." if log else "."))


def _method_params(results: StudyResults, method: str) -> list[tuple[str, bool]]:
    columns = results.table.columns
    return [(p.column, p.log) for p in results.params.get(method, []) if p.column in columns]


def _tolerance(report: Report, writer: FigureWriter) -> None:
    results, table, settings = report.results, report.results.table, report.results.spec.report
    for method in results.spec.methods:
        if not (table["method"] == method).any():
            report.note("tolerance", f"{method}: no completed trial")
            continue
        for metric in report.metrics:
            try:
                report.tolerances.append(analysis.tolerance(
                    table, method=method, metric=metric, params=_method_params(results, method),
                    threshold=settings.tolerance_threshold, n_boot=settings.bootstrap,
                    confidence=settings.confidence, seed=0,
                ))
            except ValueError as exc:
                report.note("tolerance", f"{method}, {figures.short(metric)}: {exc}")
    if report.tolerances:
        fig = figures.tolerance(report.tolerances, list(results.spec.methods))
        writer.save(fig, "tolerance", "tolerance", "Tolerance index",
                    f"Share of each method's searched range whose median score is within "
                    f"{settings.tolerance_threshold:g} × |best| of its best setting; whiskers: "
                    f"{100 * settings.confidence:g}% bootstrap interval over seeds "
                    f"({settings.bootstrap} resamples).")


def _claims(report: Report) -> None:
    results, settings = report.results, report.results.spec.report
    params = {m: _method_params(results, m) for m in results.spec.methods}
    for text in settings.claims:  # the spec's validation has parsed each one already
        report.claims.append(analysis.check_claim(
            claims.parse_claim(text), results.table, params=params, threshold=settings.tolerance_threshold,
            n_boot=settings.bootstrap, confidence=settings.confidence, seed=0,
        ))


def _pareto(report: Report, writer: FigureWriter) -> None:
    table = report.results.table
    x = RECON_EVALUATED if RECON_EVALUATED in report.results.metrics else RECON_TRAINING
    if x not in table.columns or pd.to_numeric(table[x], errors="coerce").isna().all():
        report.note("pareto", "no reconstruction score: evaluate `reconstruction` to see this plot")
        return
    ys = [m for m in report.metrics if m != x and analysis.metric_mode(m) == "max"]
    if not ys:
        report.note("pareto", "no disentanglement score among the evaluated metrics")
        return
    methods = list(report.results.spec.methods)
    fronts = {}
    for y in ys:
        fronts[y] = {m: analysis.pareto_front(table[table["method"] == m], x=x, y=y) for m in methods}
    fig = figures.pareto(table, x=x, ys=ys, fronts=fronts, methods=methods, x_mode=analysis.metric_mode(x))
    source = "held-out reconstruction error" if x == RECON_EVALUATED else "final training reconstruction loss"
    writer.save(fig, "pareto", "pareto", "Reconstruction against disentanglement",
                f"Every completed trial ({source} on x); lines: each method's Pareto front, the trials no "
                "other trial of the method beats on both axes.")


def _importances(report: Report, writer: FigureWriter) -> None:
    results, table = report.results, report.results.table
    for objective in results.spec.objectives:
        metric = EVALUATION + objective.metric
        if metric not in results.metrics:
            report.note("importances", f"no trial has a score for the objective {objective.metric}")
            continue
        found = {}
        for method in results.spec.methods:
            values = analysis.importances(table, method=method, metric=metric,
                                          params=_method_params(results, method), mode=objective.mode)
            if values:
                found[method] = values
            else:
                report.note("importances", f"{method}, {objective.metric}: not computed; it needs two or "
                                           "more varying parameters and four or more configurations")
        report.importances[metric] = found
        if found:
            writer.save(figures.importances(found, metric), f"importances_{_slug(objective.metric)}",
                        "importances", f"Importances for {objective.metric}",
                        f"Optuna's parameter importances for the objective {objective.metric} "
                        f"({objective.mode}), one Optuna trial per configuration valued at its median "
                        "over seeds.")


def _spearman(report: Report, writer: FigureWriter) -> None:
    if len(report.metrics) < 2:
        report.note("spearman", "one metric only: no correlation to show")
        return
    report.spearman = analysis.spearman(report.results.table, report.metrics)
    writer.save(figures.spearman(report.spearman), "spearman", "spearman", "Rank correlation between metrics",
                "Spearman rank correlation between the metrics over all completed trials, as in "
                "Locatello et al. (2019), figure 2.")


def _variance(report: Report, writer: FigureWriter) -> None:
    results = report.results
    params = list(dict.fromkeys(p.column for ps in results.params.values() for p in ps))
    for metric in report.metrics:
        report.variance[metric] = analysis.variance_decomposition(results.table, metric, params)
    shown = {m: v for m, v in report.variance.items() if v["total_variance"] > 0}
    if shown:
        writer.save(figures.variance(shown), "variance", "variance", "Where the variance comes from",
                    "Share of each metric's sum of squares between methods, between configurations of "
                    "a method (hyperparameters) and between seeds of a configuration.")


def parquet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing text with other values: the others as JSON text (pyarrow needs one type).

    Args:
        table: a results table (``StudyResults.trials``).

    Returns:
        A copy in which every object column that mixes text with other values, or holds a list, dict
        or tuple, has its values other than text and ``None`` as JSON text.
    """
    out = table.copy()
    for column in out.columns:
        if out[column].dtype != object:
            continue
        values = out[column].dropna()
        kinds = {isinstance(v, str) for v in values}
        if len(kinds) > 1 or any(isinstance(v, list | dict | tuple) for v in values):
            out[column] = out[column].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
    return out


def write_report(results: StudyResults, out: Path) -> Path:
    """Write ``report.html``, ``figures/`` and ``results.parquet`` into ``out``; the HTML's path.

    Args:
        results: the study's results.
        out: the report folder, created if missing; the PNG and SVG files already in its ``figures/``
            are deleted.

    Returns:
        ``out / "report.html"``.
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    figures_dir = out / "figures"
    for old in [*figures_dir.glob("*.png"), *figures_dir.glob("*.svg")]:
        old.unlink()
    writer = FigureWriter(figures_dir)
    report = Report(results, headline_metrics(results))
    parquet_safe(results.trials).to_parquet(out / "results.parquet", index=False)
    if results.table.empty:
        report.note("header", "no completed trial yet: nothing to analyse")
    else:
        _claims(report)
        _tolerance(report, writer)
        _curves(report, writer)
        _pareto(report, writer)
        _importances(report, writer)
        _spearman(report, writer)
        _variance(report, writer)
        if paper.applies(results.spec):
            report.devae = paper.compare(results.spec, results.table)
    report.figures = writer.saved
    report.seconds = time.perf_counter() - started
    path = out / "report.html"
    path.write_text(html.render(report), encoding="utf-8")
    return path
