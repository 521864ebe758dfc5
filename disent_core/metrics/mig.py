"""Mutual information gap (MIG), disentanglement_lib's discrete estimator.

Paper: Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in Variational
Autoencoders", NeurIPS 2018.

    MIG = 1/K * sum_k ( I(z_(1); v_k) - I(z_(2); v_k) ) / H(v_k)

where I(z_j; v_k) is the discrete mutual information between code dimension j, discretised into
20 equal-width bins, and factor k, and z_(1), z_(2) are the two code dimensions with the largest
MI with v_k. H(v_k) is the empirical factor entropy (dlib: the MI of the factor with itself).

Deviations from disentanglement_lib: none in the estimate. A factor with a single value (zero
entropy) makes dlib divide by zero; ``dlib2019`` refuses such datasets, ``corrected`` drops the
factor (see the engine). Fewer than two code dimensions raise ``MetricError``.
"""

from __future__ import annotations

import numpy as np

from disent_core.metrics.base import EvalContext, MetricSpec, require
from disent_core.metrics.sampling import discrete_entropy, discrete_mutual_info, histogram_discretize


def mig_from_codes(codes: np.ndarray, factors: np.ndarray, num_bins: int) -> float:
    """MIG of codes (N, D) and integer factors (N, K).

    Args:
        codes: (N, D) float codes, D >= 2; discretised into ``num_bins`` equal-width bins.
        factors: (N, K) integer factors.
        num_bins: histogram bins per code dimension.

    Returns:
        MIG in [0, 1].

    Raises:
        MetricError: fewer than two code dimensions, or a factor with a single value.
    """
    require(codes.shape[1] >= 2, f"MIG needs at least two code dimensions, got {codes.shape[1]}")
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    require(bool(np.all(entropy > 0)), "MIG: a factor takes a single value in the sample (zero entropy)")
    top = -np.sort(-mi, axis=0)
    return float(np.mean((top[0] - top[1]) / entropy))


def compute(ctx: EvalContext) -> dict[str, float]:
    """MIG on the shared ``train`` points.

    Args:
        ctx: the evaluation.

    Returns:
        ``discrete_mig`` in [0, 1].

    Raises:
        MetricError: as ``mig_from_codes``.
    """
    settings = ctx.protocol.mig
    points = ctx.points("train", settings.num_train)
    return {"discrete_mig": mig_from_codes(points.codes, points.factors, ctx.protocol.discretizer.num_bins)}


SPEC = MetricSpec(
    name="mig",
    keys=("discrete_mig",),
    compute=compute,
    points=lambda protocol: {"train": protocol.mig.num_train},
)
