"""Disentanglement, completeness and informativeness (DCI).

Paper: Eastwood & Williams, "A Framework for the Quantitative Evaluation of Disentangled
Representations", ICLR 2018.

One classifier per factor k predicts v_k from the codes; R[j, k] = importance of code j for
factor k (|feature_importances_| of a GradientBoostingClassifier with all defaults, as dlib).

    D_j = 1 - H_K(R[j, :] / sum_k R[j, k]),   D = sum_j rho_j D_j,  rho_j = sum_k R[j, k] / sum R
    C_k = 1 - H_D(R[:, k] / sum_j R[j, k]),   C = sum_k rho_k C_k,  rho_k = sum_j R[j, k] / sum R

with entropies in base K (number of factors) and base D (number of codes), 1e-11 added to every
entry as dlib does. Informativeness is the mean over factors of the classifier's *accuracy* on
the train and test sets (dlib names it ``informativeness_*``; it is not the paper's error).

Deviations from disentanglement_lib: the per-factor fits run in parallel (joblib) with a fixed
``random_state`` derived from the evaluation seed (dlib leaves it unset, so its DCI is not
reproducible), and the code columns are handed to the estimator in a canonical order (sorted by a
hash of each column's rank pattern), which makes DCI exactly invariant to permuting code
dimensions; dlib's tie-breaking between equally good splits is random instead.

The protocol may select ``estimator="hgb"``: ``HistGradientBoostingClassifier`` (100
iterations, learning rate 0.1, depth 3, no early stopping, one thread per fit), with the
importance of a code = its total split gain over all trees, normalised to sum 1 per factor. It is
faster on large samples and gives different numbers. Fewer than two code dimensions or two
factors raise ``MetricError`` (the entropies are in base D and base K).
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from disent_core.metrics.base import EvalContext, MetricSpec, check_classes, require


def disentanglement(importance: np.ndarray) -> float:
    """D of an importance matrix (codes, factors), dlib's formula."""
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness(importance: np.ndarray) -> float:
    """C of an importance matrix (codes, factors), dlib's formula."""
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def _fit_one(args: tuple) -> tuple[np.ndarray, float, float]:
    estimator, seed, x_train, y_train, x_test, y_test = args
    if estimator == "gbt":
        model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
        importance = np.abs(model.feature_importances_)
    else:
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_depth=3, early_stopping=False, random_state=seed
        ).fit(x_train, y_train)
        importance = _hgb_gain_importance(model, x_train.shape[1])
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    test_acc = float(np.mean(model.predict(x_test) == y_test))
    return importance, train_acc, test_acc


def _hgb_gain_importance(model: HistGradientBoostingClassifier, num_features: int) -> np.ndarray:
    """Total split gain per feature over every tree, normalised to sum 1 (0 when no split)."""
    predictors = getattr(model, "_predictors", None)
    if predictors is None:
        raise RuntimeError("this scikit-learn's HistGradientBoostingClassifier has no _predictors")
    gain = np.zeros(num_features)
    for iteration in predictors:
        for tree in iteration:
            nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            np.add.at(gain, nodes["feature_idx"].astype(np.int64), nodes["gain"])
    total = gain.sum()
    return gain / total if total > 0 else gain


def canonical_order(codes: np.ndarray) -> np.ndarray:
    """A column order that depends only on each column's rank pattern.

    Tree ensembles break ties between equally good splits by the order in which they visit
    features; presenting the columns in this order makes the fitted importances exactly invariant
    to permuting (and to positively rescaling) the code dimensions.
    """
    ranks = np.argsort(np.argsort(codes, axis=0, kind="stable"), axis=0, kind="stable")
    digests = [hashlib.sha256(column.astype(np.int64).tobytes()).hexdigest() for column in ranks.T]
    return np.argsort(np.array(digests), kind="stable")


def importance_matrix(
    ctx: EvalContext, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Importance (D, K) and per-factor train and test accuracies (K,), one fit per factor."""
    estimator = ctx.protocol.dci.estimator
    order = canonical_order(x_train)
    x_train, x_test = x_train[:, order], x_test[:, order]
    jobs = [
        (estimator, ctx.estimator_seed(f"dci/estimator/{k}"), x_train, y_train[:, k], x_test, y_test[:, k])
        for k in range(y_train.shape[1])
    ]
    # the largest problems first, so that the workers finish together
    classes = [len(np.unique(y_train[:, k])) for k in range(y_train.shape[1])]
    schedule = sorted(range(len(jobs)), key=lambda k: -classes[k])
    # one OpenMP thread per fit: the fits themselves run in parallel (oversubscribed OpenMP
    # threads spin and slow HistGradientBoosting down by an order of magnitude)
    with threadpool_limits(1, user_api="openmp"):
        results = ctx.parallel(_fit_one, [jobs[k] for k in schedule])
    done = dict(zip(schedule, results, strict=True))
    fits = [done[k] for k in range(len(jobs))]
    importance = np.empty((len(order), len(fits)))
    importance[order] = np.stack([f[0] for f in fits], axis=1)
    return importance, np.array([f[1] for f in fits]), np.array([f[2] for f in fits])


def compute(ctx: EvalContext) -> dict[str, float]:
    settings = ctx.protocol.dci
    train = ctx.points("train", settings.num_train)
    test = ctx.points("test", settings.num_test)
    require(train.codes.shape[1] >= 2, f"DCI needs at least two code dimensions, got {train.codes.shape[1]}")
    require(ctx.num_factors >= 2, f"DCI needs at least two scored factors, got {ctx.num_factors}")
    check_classes(train.factors, ctx, "DCI", "train points")
    importance, train_acc, test_acc = importance_matrix(
        ctx, train.codes, train.factors, test.codes, test.factors
    )
    return {
        "disentanglement": disentanglement(importance),
        "completeness": completeness(importance),
        "informativeness_train": float(np.mean(train_acc)),
        "informativeness_test": float(np.mean(test_acc)),
    }


SPEC = MetricSpec(
    name="dci",
    keys=("disentanglement", "completeness", "informativeness_train", "informativeness_test"),
    compute=compute,
    points=lambda protocol: {"train": protocol.dci.num_train, "test": protocol.dci.num_test},
)
