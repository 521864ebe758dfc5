"""Interventional robustness score (IRS).

Paper: Suter, Miladinovic, Schölkopf & Bauer, "Robustly Disentangled Causal Mechanisms:
Validating Deep Representations for Interventional Robustness", ICML 2019; dlib's ``irs``.

Factors are discretised with the 20-bin histogram discretiser and constant code dimensions are
dropped. For code j and factor k, with E_v the points where v_k = v:

    dev[j, k] = mean over values v of quantile_q( |z_j - mean_{E_v} z_j| over E_v )
    IRS_j = max_k (1 - dev[j, k] / maxdev_j),   maxdev_j = max |z_j - mean z_j|
    IRS = sum_j maxdev_j IRS_j / sum_j maxdev_j          (q = diff_quantile = 0.99)

Output: ``IRS`` (0 when every code dimension is constant) and ``num_active_dims``.

Deviation from disentanglement_lib: dlib reports ``num_active_dims`` as the *sum of the code
values* of the active dimensions (``np.sum`` of the matrix instead of its row count); we report the
number of non-constant code dimensions.
"""

from __future__ import annotations

import numpy as np

from disent_core.metrics.base import EvalContext, MetricSpec
from disent_core.metrics.sampling import histogram_discretize


def irs_score(factors: np.ndarray, codes: np.ndarray, diff_quantile: float) -> float:
    """IRS of discretised factors (N, K) and non-constant codes (N, D).

    Args:
        factors: (N, K) integer discretised factors.
        codes: (N, D) float codes, no constant column.
        diff_quantile: the quantile q of the within-group deviations, in [0, 1].

    Returns:
        IRS, at most 1 (1: every code dimension is robust to the other factors).
    """
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    dev = np.zeros((codes.shape[1], factors.shape[1]))
    for k in range(factors.shape[1]):
        values = np.unique(factors[:, k])
        for value in values:
            group = codes[factors[:, k] == value]
            dev[:, k] += np.percentile(np.abs(group - group.mean(axis=0)), diff_quantile * 100, axis=0)
        dev[:, k] /= len(values)
    per_code = (1.0 - dev / max_dev[:, None]).max(axis=1)
    if max_dev.sum() > 0:
        return float(np.average(per_code, weights=max_dev))
    return float(per_code.mean())


def compute(ctx: EvalContext) -> dict[str, float]:
    """IRS on the shared ``train`` points, constant code dimensions dropped.

    Args:
        ctx: the evaluation.

    Returns:
        ``IRS`` (0 when every code dimension is constant) and ``num_active_dims``.
    """
    settings = ctx.protocol.irs
    points = ctx.points("train", settings.num_train)
    active = points.codes.var(axis=0) > 0
    factors = histogram_discretize(points.factors, ctx.protocol.discretizer.num_bins)
    score = irs_score(factors, points.codes[:, active], settings.diff_quantile) if active.any() else 0.0
    return {"IRS": score, "num_active_dims": float(active.sum())}


SPEC = MetricSpec(
    name="irs",
    keys=("IRS", "num_active_dims"),
    compute=compute,
    points=lambda protocol: {"train": protocol.irs.num_train},
)
