"""What a study found, in a sentence per method: the trend of its main quantities along the parameter
it searched most widely.

For each method with a numeric searched parameter that took at least two values among the completed
trials (the one with the most values when several did), the sentence gives the median over the
trials at its lowest and at its highest value of: the reconstruction error (the ``reconstruction``
metric, else the final training reconstruction loss), the active latent dimensions (``final.active_dims``:
KL above 0.01 nats at the end of training), and the first objective, with the value where that
objective's median is best. Medians pool the seeds and any other searched parameter (``curve``).

    beta_vae (medians of 10 trials): as beta goes from 1 to 16, reconstruction error rises from 31.2
    to 95.4, active dimensions fall from 9 to 4 and mig.discrete_mig goes from 0.04 to 0.21 (best
    0.23 at beta 8)

A method without such a parameter (one configuration, or only categorical choices) says so. The
report's header and the end of ``disent-study run`` / ``report`` show these lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from studies.report.analysis import curve, metric_column, metric_mode, searched_params
from studies.report.figures import param_label, short
from studies.results import ACTIVE_DIMS, EVALUATION, FINAL, LOSS

if TYPE_CHECKING:
    from studies.report.results import StudyResults

FINAL_ACTIVE_DIMS = f"{FINAL}{ACTIVE_DIMS}"
RECONSTRUCTION_SCORE = f"{EVALUATION}reconstruction.reconstruction_error"
RECONSTRUCTION_LOSS = f"{FINAL}{LOSS}recon"


def _value(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2g}"


def _trend(name: str, low: float, high: float, count: bool = False) -> str:
    """``name rises from low to high``; a count (of dimensions) is plural and rounded."""
    fmt = (lambda v: str(round(v))) if count else _value
    if fmt(low) == fmt(high):
        return f"{name} {'stay' if count else 'stays'} at {fmt(low)}"
    verb = ("rise" if high > low else "fall") + ("" if count else "s")
    return f"{name} {verb} from {fmt(low)} to {fmt(high)}"


def _widest_param(table: pd.DataFrame, method: str) -> tuple[str, pd.Series] | None:
    """The method's numeric searched column with the most distinct values (at least two)."""
    rows = table[table["method"] == method]
    best = None
    for column in searched_params(table, method):
        values = pd.to_numeric(rows[column], errors="coerce").dropna()
        if len(values) != rows[column].notna().sum() or values.nunique() < 2:
            continue
        if best is None or values.nunique() > best[1].nunique():
            best = (column, values)
    return best


def _ends(table: pd.DataFrame, method: str, column: str, param: str) -> tuple[float, float] | None:
    if column not in table.columns:
        return None
    medians = curve(table, method=method, metric=column, param=param)
    if len(medians) < 2:
        return None
    return float(medians["median"].iloc[0]), float(medians["median"].iloc[-1])


def method_finding(table: pd.DataFrame, method: str, objective: str | None) -> str:
    """One sentence on how ``method``'s results move along its most widely searched parameter.

    Args:
        table: the results table of the completed trials.
        method: the method.
        objective: the first objective's metric (``mig.discrete_mig``), or None.

    Returns:
        ``"<method>: as <param> goes from <low> to <high>, ..."``, or why there is no trend to tell.
    """
    rows = table[table["method"] == method] if "method" in table.columns else table.iloc[0:0]
    if rows.empty:
        return f"{method}: no completed trial"
    widest = _widest_param(table, method)
    if widest is None:
        return f"{method}: one configuration (or categorical choices only), so no trend to tell"
    param, values = widest
    label = param_label(param, method)
    parts = []
    recon = RECONSTRUCTION_SCORE if RECONSTRUCTION_SCORE in table.columns else RECONSTRUCTION_LOSS
    name = "reconstruction error" if recon == RECONSTRUCTION_SCORE else "reconstruction loss"
    for column, what, count in ((recon, name, False), (FINAL_ACTIVE_DIMS, "active dimensions", True)):
        ends = _ends(table, method, column, param)
        if ends is not None:
            parts.append(_trend(what, *ends, count=count))
    if objective is not None:
        try:
            column = metric_column(table, objective)
        except KeyError:
            column = None
        if column is not None and (ends := _ends(table, method, column, param)) is not None:
            medians = curve(table, method=method, metric=column, param=param)
            pick = medians["median"].idxmax() if metric_mode(column) == "max" else medians["median"].idxmin()
            best = medians.loc[pick]
            low, high = (_value(v) for v in ends)
            verb = "stays at " + low if low == high else f"goes from {low} to {high}"
            parts.append(f"{short(column)} {verb} (best {_value(best['median'])} at {label} "
                         f"{_value(best['setting'])})")
    if not parts:
        return f"{method}: no score to follow along {label}"
    said = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    trials = len(rows)
    return (f"{method} (medians of {trials} trial{'s' * (trials != 1)}): as {label} goes from "
            f"{_value(values.min())} to {_value(values.max())}, {said}")


def findings(table: pd.DataFrame, methods: list[str], objective: str | None) -> list[str]:
    """``method_finding`` of every method, in the spec's order.

    Args:
        table: the results table of the completed trials.
        methods: the spec's methods.
        objective: the first objective's metric, or None.

    Returns:
        One sentence per method.
    """
    return [method_finding(table, method, objective) for method in methods]



def study_findings(results: StudyResults) -> list[str]:
    """``findings`` of a study's completed trials, along its first objective.

    Args:
        results: the study's results.

    Returns:
        One sentence per method of the spec.
    """
    objectives = results.spec.objectives
    return findings(results.table, list(results.spec.methods), objectives[0].metric if objectives else None)
