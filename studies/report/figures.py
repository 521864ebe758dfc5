"""The figures of a study report: matplotlib (Agg), each written as PNG (embedded in the HTML) and SVG.

Every function takes numbers the analysis already computed, draws one figure, writes
``<name>.png`` and ``<name>.svg`` into the figures directory and closes it, so a report of
hundreds of trials stays well under a minute. Figures with several panels share one axis style:

- response curves: one figure per method and searched parameter, one panel per metric: the median
  over trials at each setting and the inter-quartile band (log x where the parameter was searched
  on a log scale; list and schedule choices as categories in the order they appear);
- tolerance: one panel per metric, a bar per method with its bootstrap interval;
- reconstruction against disentanglement: every trial, and each method's Pareto front as a line;
- importances, the Spearman heatmap and the variance decomposition (stacked shares).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from studies.report.analysis import Tolerance

PNG_DPI = 96
PANEL_W, PANEL_H = 3.3, 2.6
COLORS = plt.get_cmap("tab10").colors
SHARES = (("method", "#4c72b0"), ("hyperparameters", "#dd8452"), ("seed", "#8c8c8c"))


@dataclass(frozen=True)
class SavedFigure:
    """A written figure: its file stem, the section it belongs to, a title and a caption."""

    name: str
    section: str
    title: str
    caption: str
    png: Path
    svg: Path


def short(column: str) -> str:
    """A column without its namespace: ``mig.discrete_mig``, ``beta_vae.beta``, ``loss/recon``.

    Args:
        column: a results-table column.

    Returns:
        ``column`` without its ``evaluation_results.``, ``search.`` or ``final.`` prefix, if any.
    """
    for prefix in ("evaluation_results.", "search.", "final."):
        if column.startswith(prefix):
            return column[len(prefix):]
    return column


def param_label(column: str, method: str) -> str:
    """A searched column without ``search.`` and its method's prefix (``capacity[0].end``).

    Args:
        column: a ``search.*`` column.
        method: the method whose parameter it is.

    Returns:
        The label.
    """
    name = short(column)
    return name[len(method) + 1:] if name.startswith(method + ".") else name


def method_color(methods: Sequence[str], method: str) -> tuple:
    """The colour of ``method``: its position in ``methods`` on the tab10 cycle.

    Args:
        methods: every method of the study, in spec order.
        method: one method.

    Returns:
        An RGB tuple of floats in [0, 1]; the last colour for a method not in ``methods``.
    """
    return COLORS[list(methods).index(method) % len(COLORS)] if method in methods else COLORS[-1]


class FigureWriter:
    """Writes figures into one directory and remembers them in order."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.saved: list[SavedFigure] = []

    def save(self, fig: Figure, name: str, section: str, title: str, caption: str) -> SavedFigure:
        """Write ``fig`` as ``<name>.png`` and ``<name>.svg``, close it and remember it.

        Args:
            fig: the figure.
            name: the file stem.
            section: the section key of the page it belongs to.
            title: its title on the page.
            caption: its caption on the page.

        Returns:
            The saved figure.
        """
        png, svg = self.directory / f"{name}.png", self.directory / f"{name}.svg"
        fig.savefig(png, dpi=PNG_DPI, bbox_inches="tight")
        fig.savefig(svg, bbox_inches="tight")
        plt.close(fig)
        saved = SavedFigure(name, section, title, caption, png, svg)
        self.saved.append(saved)
        return saved


def _panels(n: int, columns: int = 3, width: float = PANEL_W, height: float = PANEL_H) -> tuple[Figure, list]:
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False,
                             layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _tick(value: object, width: int = 14) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def curves(curves_by_metric: dict[str, pd.DataFrame], *, method: str, param: str, log: bool, color: tuple,
           points: dict[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """Median and inter-quartile band of each metric against one searched parameter of one method,
    over the trials as dots (``points``: metric -> (parameter values, scores); numeric parameters).

    Args:
        curves_by_metric: metric column -> its ``analysis.curve`` frame (``setting``, ``median``,
            ``q25``, ``q75``); one panel each.
        method: the method.
        param: the ``search.*`` column on x.
        log: whether x is on a log scale (numeric settings only).
        color: the method's colour.
        points: metric column -> (parameter values, scores), float arrays (N,) of the trials.

    Returns:
        The figure, open (``FigureWriter.save`` closes it).
    """
    fig, axes = _panels(len(curves_by_metric))
    label = param_label(param, method)
    for ax, (metric, frame) in zip(axes, curves_by_metric.items(), strict=True):
        numeric = pd.api.types.is_numeric_dtype(frame["setting"]) and not frame.empty
        x = frame["setting"].to_numpy(dtype=float) if numeric else np.arange(len(frame))
        if numeric and metric in points:
            ax.scatter(*points[metric], s=6, color=color, alpha=0.3, linewidths=0)
        ax.fill_between(x, frame["q25"], frame["q75"], color=color, alpha=0.25, linewidth=0, label="IQR")
        ax.plot(x, frame["median"], "o-", color=color, markersize=4, label="median")
        if numeric and log:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if not numeric:
            ax.set_xticks(x, [_tick(s) for s in frame["setting"]], rotation=30, ha="right", fontsize=7)
        ax.set_xlabel(label + (" (log)" if log else ""), fontsize=8)
        ax.set_title(short(metric), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{method}: scores against {label} (median, IQR over trials)", fontsize=10)
    return fig


def tolerance(results: list[Tolerance], methods: Sequence[str]) -> Figure:
    """Tolerance index per method, one panel per metric, with the bootstrap interval.

    Args:
        results: the ``analysis.Tolerance`` of each method and metric computed.
        methods: every method of the study (for the colours).

    Returns:
        The figure, open.
    """
    metrics = list(dict.fromkeys(t.metric for t in results))
    fig, axes = _panels(len(metrics), columns=4, width=2.9, height=0.45 * len(methods) + 1.2)
    for ax, metric in zip(axes, metrics, strict=True):
        rows = [t for t in results if t.metric == metric]
        y = np.arange(len(rows))
        # a method searched over one configuration tolerates it trivially: no bar, a note instead
        measured = np.array([bool(t.params) and t.n_configs > 1 for t in rows])
        values = np.array([t.index if m else 0.0 for t, m in zip(rows, measured, strict=True)])
        low = np.where(measured, np.clip(values - np.array([t.ci_low for t in rows]), 0, None), 0.0)
        high = np.where(measured, np.clip(np.array([t.ci_high for t in rows]) - values, 0, None), 0.0)
        ax.barh(y, values, xerr=[low, high], color=[method_color(methods, t.method) for t in rows],
                capsize=3, height=0.6)
        for row in y[~measured]:
            ax.text(0.02, row, "not measurable (one configuration)", va="center", fontsize=7, color="0.35")
        ax.set_yticks(y, [t.method for t in rows], fontsize=8)
        ax.set_xlim(0, 1.05)
        ax.invert_yaxis()
        ax.set_title(short(metric), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("tolerance index (share of the searched range within the threshold of the best)",
                 fontsize=10)
    return fig


def pareto(table: pd.DataFrame, *, x: str, ys: list[str], fronts: dict[str, dict[str, pd.Index]],
           methods: Sequence[str], x_mode: str) -> Figure:
    """Every trial in (reconstruction, score) and each method's Pareto front, one panel per score.

    Args:
        table: completed trials (``method``, ``x`` and ``ys`` columns).
        x: the reconstruction column.
        ys: the score columns, one panel each.
        fronts: score column -> method -> index labels of its front rows in ``table``.
        methods: the methods to draw, in colour order.
        x_mode: ``"min"`` if a lower ``x`` is better, else ``"max"``.

    Returns:
        The figure, open.
    """
    fig, axes = _panels(len(ys), columns=3, width=3.6, height=3.0)
    for ax, y in zip(axes, ys, strict=True):
        for method in methods:
            rows = table[table["method"] == method]
            color = method_color(methods, method)
            ax.scatter(pd.to_numeric(rows[x], errors="coerce"), pd.to_numeric(rows[y], errors="coerce"),
                       s=12, alpha=0.55, color=color, label=method, linewidths=0)
            front = table.loc[fronts[y].get(method, pd.Index([]))]
            if len(front):
                front = front.assign(_x=pd.to_numeric(front[x]), _y=pd.to_numeric(front[y])).sort_values("_x")
                ax.plot(front["_x"], front["_y"], "o-", color=color, linewidth=1.5, markersize=6,
                        markerfacecolor="none", drawstyle="steps-post" if x_mode == "min" else "steps-pre")
        ax.set_xlabel(short(x) + (" (lower is better)" if x_mode == "min" else ""), fontsize=8)
        ax.set_ylabel(short(y), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("reconstruction against disentanglement: every trial, lines: each method's Pareto front",
                 fontsize=10)
    return fig


def importances(values: dict[str, dict[str, float]], metric: str) -> Figure:
    """Optuna's parameter importances per method (bars, largest on top).

    Args:
        values: method -> (``search.*`` column -> importance, largest first); one panel each.
        metric: the objective's column (for the title).

    Returns:
        The figure, open.
    """
    fig, axes = _panels(len(values), columns=3, width=3.4,
                        height=0.35 * max(len(v) for v in values.values()) + 1.2)
    for ax, (method, found) in zip(axes, values.items(), strict=True):
        names = [param_label(p, method) for p in found]
        y = np.arange(len(names))
        ax.barh(y, list(found.values()), color="#4c72b0", height=0.6)
        ax.set_yticks(y, [_tick(n, 24) for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(method, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"hyperparameter importances for {short(metric)} (Optuna, PED-ANOVA)", fontsize=10)
    return fig


def spearman(matrix: pd.DataFrame) -> Figure:
    """Heatmap of the Spearman rank correlation between metrics, values written in the cells.

    Args:
        matrix: the square correlation matrix, metric columns as index and columns (NaN allowed).

    Returns:
        The figure, open.
    """
    labels = [short(str(c)) for c in matrix.columns]
    size = 1.0 + 0.75 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.2, size), layout="constrained")
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, "–" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8,
                color="white" if abs(v) > 0.6 else "black")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Spearman rank correlation between metrics (all completed trials)", fontsize=10)
    return fig


def variance(shares: dict[str, dict[str, float]]) -> Figure:
    """Stacked shares of each metric's variance from the method, the hyperparameters and the seed.

    Args:
        shares: metric column -> ``analysis.variance_decomposition`` result (``method``,
            ``hyperparameters`` and ``seed`` shares).

    Returns:
        The figure, open.
    """
    metrics = list(shares)
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(metrics) + 1.3), layout="constrained")
    y = np.arange(len(metrics))
    left = np.zeros(len(metrics))
    for part, color in SHARES:
        width = np.array([shares[m][part] for m in metrics], dtype=float)
        ax.barh(y, width, left=left, color=color, height=0.6, label=part)
        left += np.nan_to_num(width)
    ax.set_yticks(y, [short(m) for m in metrics], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the sum of squares", fontsize=8)
    ax.legend(fontsize=8, ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.tick_params(labelsize=7)
    return fig
