"""The claim grammar of a study spec's ``report.claims``, and the metric names claims may use.

A claim compares a statistic of one method's scores with another method's, or with a number::

    <method> <statistic>(<metric>) <op> <method> <statistic>(<metric>)
    <method> <statistic>(<metric>) <op> <number>

with ``<statistic>`` one of ``tolerance``, ``best``, ``median``, ``<op>`` one of ``>``, ``<``,
``>=``, ``<=``, and ``<metric>`` a score key (``mig.discrete_mig``) or a metric name standing for
its main score (``MAIN_KEYS``). ``parse_claim`` reads one; the spec validates claims with it before
a study starts, and ``studies.report.analysis.check_claim`` judges them on the results table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from studies.results import EVALUATION

MAIN_KEYS: dict[str, str] = {
    "mig": "mig.discrete_mig",
    "dci": "dci.disentanglement",
    "factor_vae": "factor_vae.eval_accuracy",
    "beta_vae": "beta_vae.eval_accuracy",
    "sap": "sap.SAP_score",
    "modularity": "modularity.modularity_score",
    "irs": "irs.IRS",
    "reconstruction": "reconstruction.reconstruction_error",
    "unsupervised": "unsupervised.gaussian_total_correlation",
}
STATISTICS = ("tolerance", "best", "median")
OPERATORS = (">=", "<=", ">", "<")


def metric_key(metric: str) -> str:
    """``mig.discrete_mig`` for ``evaluation_results.mig.discrete_mig`` or ``mig.discrete_mig``."""
    return metric[len(EVALUATION) :] if metric.startswith(EVALUATION) else metric


@dataclass(frozen=True)
class Term:
    method: str
    statistic: Literal["tolerance", "best", "median"]
    metric: str  # a metric key, e.g. mig.discrete_mig

    def __str__(self) -> str:
        return f"{self.method} {self.statistic}({self.metric})"


@dataclass(frozen=True)
class Claim:
    text: str
    lhs: Term
    op: str
    rhs: Term | float


GRAMMAR = (
    "'<method> <statistic>(<metric>) <op> <method> <statistic>(<metric>)' or "
    "'<method> <statistic>(<metric>) <op> <number>', with <statistic> one of tolerance, best, median, "
    "<op> one of >, <, >=, <=, and <metric> a key such as mig.discrete_mig or a metric name "
    "(its main score); e.g. 'devae tolerance(mig) > beta_vae tolerance(mig)'"
)
_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z_]+)\s*\(\s*([^()\s]*)\s*\)$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_OPERATOR = re.compile(r">=|<=|>|<")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


def _claim_error(text: str, reason: str) -> ValueError:
    return ValueError(f"cannot read claim {text!r}: {reason}; write {GRAMMAR}")


def _term(text: str, side: str, part: str) -> Term:
    match = _TERM.match(part)
    if not match:
        raise _claim_error(text, f"the {side} side {part!r} is not '<method> <statistic>(<metric>)'")
    method, statistic, metric = match.groups()
    if statistic not in STATISTICS:
        raise _claim_error(text, f"unknown statistic {statistic!r} on the {side} side")
    metric = metric_key(metric)
    if "." not in metric:
        if metric not in MAIN_KEYS:
            names = ", ".join(MAIN_KEYS)
            raise _claim_error(
                text, f"unknown metric {metric!r}; metric names: {names}, or a key such as mig.discrete_mig"
            )
        metric = MAIN_KEYS[metric]
    elif not _KEY.match(metric):
        raise _claim_error(text, f"{metric!r} is not a metric key such as mig.discrete_mig")
    return Term(method, statistic, metric)  # type: ignore[arg-type]


def parse_claim(text: str) -> Claim:
    """A ``Claim`` from its text; ``ValueError`` naming the problem and the grammar otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise _claim_error(str(text), "it is empty")
    operators = _OPERATOR.findall(text)
    if len(operators) != 1:
        reason = "no comparison operator" if not operators else f"{len(operators)} comparison operators"
        raise _claim_error(text, reason)
    op = operators[0]
    left, right = (part.strip() for part in text.split(op))
    lhs = _term(text, "left", left)
    if _NUMBER.match(right):
        return Claim(text, lhs, op, float(right))
    return Claim(text, lhs, op, _term(text, "right", right))
