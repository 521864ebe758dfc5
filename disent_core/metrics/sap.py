"""Separated attribute predictability (SAP).

Paper: Kumar, Sattigeri & Balakrishnan, "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", ICLR 2018, Section 3.

Score matrix S[j, k] (code j, factor k):

- discrete factors (dlib's study setting): test accuracy of
  ``LinearSVC(C=0.01, class_weight="balanced")`` trained to predict v_k from the single scalar z_j;
- continuous factors: S[j, k] = Cov(z_j, v_k)^2 / (Var z_j Var v_k), 0 when Var z_j <= 1e-12.

    SAP = 1/K * sum_k ( S_(1)k - S_(2)k ),   the gap between the two best codes for each factor.

Deviations from disentanglement_lib: the D x K fits run in parallel, one job per code dimension;
``random_state`` of each LinearSVC is derived from the evaluation seed; the primal solver is pinned
(``dual=False``; dlib's scikit-learn used the dual one, which converges to the same optimum, with
test accuracies equal to about 1e-4, and is slower). Fewer than two code
dimensions raise ``MetricError``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from disent_core.metrics.base import EvalContext, MetricSpec, check_classes, require
from disent_core.metrics.protocol import Protocol


def avg_diff_top_two(matrix: np.ndarray) -> float:
    """Mean over columns of (largest - second largest) entry."""
    ordered = np.sort(matrix, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def continuous_score_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Squared correlations (D, K), 0 for (near-)constant codes, dlib's continuous mode."""
    z = codes - codes.mean(axis=0)
    v = factors - factors.mean(axis=0)
    n = len(codes) - 1
    cov = z.T @ v / n
    var_z = (z * z).sum(axis=0) / n
    var_v = (v * v).sum(axis=0) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        score = cov**2 / (var_z[:, None] * var_v[None, :])
    return np.where(var_z[:, None] > 1e-12, score, 0.0)


def _fit_code(args: tuple) -> np.ndarray:
    """Accuracies (K,) of one code dimension predicting every factor."""
    c, seeds, x_train, y_train, x_test, y_test = args
    out = np.empty(y_train.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in range(y_train.shape[1]):
            model = LinearSVC(C=c, class_weight="balanced", dual=False, random_state=seeds[k])
            model.fit(x_train[:, None], y_train[:, k])
            out[k] = np.mean(model.predict(x_test[:, None]) == y_test[:, k])
    return out


def discrete_score_matrix(
    ctx: EvalContext, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> np.ndarray:
    """LinearSVC test accuracies (D, K), fitted in parallel over code dimensions."""
    c = ctx.protocol.sap.svc_c
    jobs = [
        (
            c,
            [ctx.estimator_seed(f"sap/estimator/{j}/{k}") for k in range(y_train.shape[1])],
            x_train[:, j], y_train, x_test[:, j], y_test,
        )
        for j in range(x_train.shape[1])
    ]
    return np.stack(ctx.parallel(_fit_code, jobs))


def compute(ctx: EvalContext) -> dict[str, float]:
    settings = ctx.protocol.sap
    train = ctx.points("train", settings.num_train)
    require(train.codes.shape[1] >= 2, f"SAP needs at least two code dimensions, got {train.codes.shape[1]}")
    if settings.continuous_factors:
        matrix = continuous_score_matrix(train.codes, train.factors.astype(np.float64))
    else:
        test = ctx.points("test", settings.num_test)
        check_classes(train.factors, ctx, "SAP", "train points")
        matrix = discrete_score_matrix(ctx, train.codes, train.factors, test.codes, test.factors)
    return {"SAP_score": avg_diff_top_two(matrix)}


def _points(protocol: Protocol) -> dict[str, int]:
    settings = protocol.sap
    if settings.continuous_factors:
        return {"train": settings.num_train}
    return {"train": settings.num_train, "test": settings.num_test}


SPEC = MetricSpec(name="sap", keys=("SAP_score",), compute=compute, points=_points)
