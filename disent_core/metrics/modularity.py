"""Modularity and explicitness.

Paper: Ridgeway & Mozer, "Learning Deep Disentangled Embeddings With the F-Statistic Loss",
NeurIPS 2018.

Modularity, from the MI matrix m[j, k] between code j (20-bin histogram) and factor k:

    delta_j = (sum_k m[j, k]^2 - max_k m[j, k]^2) / (max_k m[j, k]^2 * (K - 1))
    modularity = 1/D * sum_j (1 - delta_j),   with 1 - delta_j := 0 when max_k m[j, k] = 0

Explicitness: per factor, a logistic regression on the codes standardised with the train mean
and standard deviation predicts v_k; its score is the macro one-vs-rest ROC-AUC on one-hot labels;
``explicitness_score_{train,test}`` = mean over factors.

Deviations from disentanglement_lib: the solver is explicit (``liblinear_ovr`` reproduces the
scikit-learn default dlib ran with); the per-factor fits run in parallel. A code dimension with
zero standard deviation is divided by 1 instead of 0 (dlib produces NaN). The AUC is averaged over
the classes that occur in the evaluated labels and that the classifier knows (dlib fails when the
test set lacks or adds a class). Fewer than two factors raise ``MetricError`` (K - 1 = 0).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from disent_core.metrics._classifiers import logistic_regression
from disent_core.metrics.base import EvalContext, MetricSpec, check_classes, require
from disent_core.metrics.sampling import discrete_mutual_info, histogram_discretize


def modularity(mutual_information: np.ndarray) -> float:
    """Modularity of an MI matrix (codes, factors), dlib's formula.

    Args:
        mutual_information: (D, K) MI (nats, >= 0) between code j and factor k, K >= 2.

    Returns:
        Modularity in [0, 1].
    """
    squared = np.square(mutual_information)
    top = squared.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (squared.sum(axis=1) - top) / (top * (squared.shape[1] - 1.0))
    return float(np.mean(np.where(top == 0.0, 0.0, 1.0 - delta)))


def _auc(classes: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> float:
    onehot = (labels[:, None] == classes[None, :]).astype(np.int64)
    valid = (onehot.sum(axis=0) > 0) & (onehot.sum(axis=0) < len(labels))
    require(bool(valid.any()), "explicitness: the evaluated labels hold a single class; increase num_test")
    return float(roc_auc_score(onehot[:, valid], probabilities[:, valid], average="macro"))


def _explicitness(args: tuple) -> tuple[float, float]:
    solver, seed, x_train, y_train, x_test, y_test = args
    model = logistic_regression(solver, seed).fit(x_train, y_train)
    return (
        _auc(model.classes_, model.predict_proba(x_train), y_train),
        _auc(model.classes_, model.predict_proba(x_test), y_test),
    )


def compute(ctx: EvalContext) -> dict[str, float]:
    """Modularity on the shared ``train`` points, explicitness fitted on ``train``, tested on ``test``.

    Args:
        ctx: the evaluation.

    Returns:
        ``modularity_score``, ``explicitness_score_train`` and ``explicitness_score_test`` (mean
        ROC-AUC), each in [0, 1].

    Raises:
        MetricError: fewer than two scored factors, or a factor or evaluated label set with a
            single class.
    """
    settings = ctx.protocol.modularity
    train = ctx.points("train", settings.num_train)
    test = ctx.points("test", settings.num_test)
    require(ctx.num_factors >= 2, f"modularity needs at least two scored factors, got {ctx.num_factors}")
    check_classes(train.factors, ctx, "explicitness", "train points")
    binned = histogram_discretize(train.codes, ctx.protocol.discretizer.num_bins)
    mi = discrete_mutual_info(binned, train.factors)
    mean = train.codes.mean(axis=0)
    std = train.codes.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train, x_test = (train.codes - mean) / std, (test.codes - mean) / std
    jobs = [
        (settings.solver, ctx.estimator_seed(f"modularity/estimator/{k}"),
         x_train, train.factors[:, k], x_test, test.factors[:, k])
        for k in range(ctx.num_factors)
    ]
    scores = np.array(ctx.parallel(_explicitness, jobs))
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(scores[:, 0].mean()),
        "explicitness_score_test": float(scores[:, 1].mean()),
    }


SPEC = MetricSpec(
    name="modularity",
    keys=("modularity_score", "explicitness_score_train", "explicitness_score_test"),
    compute=compute,
    points=lambda protocol: {"train": protocol.modularity.num_train, "test": protocol.modularity.num_test},
)
