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
Fewer than two code dimensions or two factors raise ``MetricError``.

Deviations from disentanglement_lib:
- each per-factor fit has a fixed ``random_state`` derived from the evaluation seed (dlib's is unset);
- the code columns reach the estimator in a canonical order, so DCI is exactly invariant to
  permuting code dimensions (dlib breaks ties between equally good splits at random);
- ``dci.estimator`` ``"hist_gbt"`` (the ``fast`` protocol) and ``"hgb"`` use histogram gradient
  boosting: much faster, **not comparable** with dlib's or published numbers.

docs/metrics.md ("DCI") gives the estimators, their importances, timings and how far they differ.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.special
import scipy.stats
import sklearn
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from disent_core.errors import MetricError
from disent_core.metrics.base import EvalContext, MetricSpec, check_classes, require


def disentanglement(importance: np.ndarray) -> float:
    """D of an importance matrix, dlib's formula.

    Args:
        importance: R, (codes, factors), non-negative.

    Returns:
        D = sum_j rho_j D_j (weights uniform when R is all zero).
    """
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness(importance: np.ndarray) -> float:
    """C of an importance matrix, dlib's formula.

    Args:
        importance: R, (codes, factors), non-negative.

    Returns:
        C = sum_k rho_k C_k (weights uniform when R is all zero).
    """
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def _fit_one(args: tuple) -> tuple[np.ndarray, float, float]:
    estimator, seed, x_train, y_train, x_test, y_test = args
    if estimator == "gbt":
        model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
        importance = np.abs(model.feature_importances_)
    elif estimator == "hist_gbt":
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_depth=3, min_samples_leaf=1, early_stopping=False,
            random_state=seed,
        ).fit(x_train, y_train)
        booster = HeapBooster(model)
        importance, predicted = residual_importance(booster, x_train, y_train)
        test_predicted = booster.predict(x_test)
        return importance, float(np.mean(predicted == y_train)), float(np.mean(test_predicted == y_test))
    else:
        model = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, max_depth=3, early_stopping=False, random_state=seed
        ).fit(x_train, y_train)
        importance = _hgb_gain_importance(model, x_train.shape[1])
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    test_acc = float(np.mean(model.predict(x_test) == y_test))
    return importance, train_acc, test_acc


def _predictors(model: HistGradientBoostingClassifier) -> list:
    """The fitted trees of each iteration. scikit-learn has no public API for them, so the fast
    estimators are tied to the scikit-learn range pinned in pyproject.toml (<1.10), where
    tests/metrics/test_estimators.py checks their predictions against ``predict``."""
    predictors = getattr(model, "_predictors", None)
    if predictors is None:
        raise MetricError(
            f"scikit-learn {sklearn.__version__}'s HistGradientBoostingClassifier does not expose its "
            "fitted trees as the fast DCI estimators expect; install scikit-learn>=1.4,<1.10 or use "
            "dci.estimator 'gbt' (the disentanglement_lib estimator)"
        )
    return predictors


def _hgb_gain_importance(model: HistGradientBoostingClassifier, num_features: int) -> np.ndarray:
    """Total split gain per feature over every tree, normalised to sum 1 (0 when no split)."""
    gain = np.zeros(num_features)
    for iteration in _predictors(model):
        for tree in iteration:
            nodes = tree.nodes[~tree.nodes["is_leaf"].astype(bool)]
            np.add.at(gain, nodes["feature_idx"].astype(np.int64), nodes["gain"])
    total = gain.sum()
    return gain / total if total > 0 else gain


def residual_importance(booster: HeapBooster, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``GradientBoostingClassifier.feature_importances_`` for the trees of a histogram booster,
    and the booster's predictions on the training points ``x``.

    Gradient boosting's importance of a feature is the squared error of the residuals removed by
    the splits on it, summed over all trees and normalised to sum 1 (0 when no split). At iteration
    t, the tree of class k is fitted to the residuals r = 1[y = k] - p_k(x) of the model so far
    (softmax of its raw predictions; with two classes one tree and the sigmoid); a split of node
    n into children l and r removes S_l^2 / N_l + S_r^2 / N_r - S_n^2 / N_n, with S the sum of
    the residuals of the training points in a node and N their number. The booster stores neither,
    so the training points (binned as the booster binned them) are passed down its trees, one
    iteration at a time, with the raw predictions rebuilt from the leaf values; the final raw
    predictions give the predicted labels for free.

    Args:
        booster: the fitted histogram booster.
        x: the training points it was fitted on, (N, features).
        y: their labels, (N,).

    Returns:
        (importance, predicted): (features,) importances summing to 1 (0 when no split) and the
        booster's (N,) predicted labels of ``x``.
    """
    one_hot = (y[:, None] == booster.model.classes_[None, :]).astype(np.float64)
    raw = booster.baseline(len(x))
    importance = np.zeros(x.shape[1])
    binned = booster.binned(x)
    for heap in booster.iterations:
        trees = len(heap.code)
        if trees == 1:
            residual = one_hot[:, 1:] - scipy.special.expit(raw)
        else:
            residual = one_hot - scipy.special.softmax(raw, axis=1)
        bottom = heap.bottom_slots(binned)
        raw += heap.value.ravel()[bottom]
        shape = (trees, 2**heap.depth)
        count = np.bincount(bottom.ravel(), minlength=shape[0] * shape[1]).reshape(shape)
        total = np.bincount(bottom.ravel(), weights=residual.ravel(), minlength=count.size).reshape(shape)
        for level in range(heap.depth - 1, -1, -1):  # each level's sums from its children's
            children = _explained(count, total).reshape(trees, -1, 2).sum(axis=2)
            count = count.reshape(trees, -1, 2).sum(axis=2)
            total = total.reshape(trees, -1, 2).sum(axis=2)
            gain = children - _explained(count, total)
            nodes = slice(2**level - 1, 2 ** (level + 1) - 1)
            split = heap.split[:, nodes]
            features = heap.code[:, nodes][split] >> 8
            importance += np.bincount(features, weights=gain[split], minlength=x.shape[1])
    importance = np.maximum(importance, 0.0)
    importance = importance / importance.sum() if importance.sum() > 0 else importance
    return importance, booster.labels(raw)


def _explained(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    """S^2 / N per node (0 for an empty node): the squared error its mean removes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total**2 / count, 0.0)


class HeapBooster:
    """A fitted histogram booster whose iterations are laid out as heap trees (``_HeapTrees``).

    Passing binned points down all trees of an iteration at once is much faster than
    scikit-learn's ``predict``, which walks one tree at a time, and gives the same predictions:
    a node's threshold on the raw value is the upper edge of its bin threshold.

    Args:
        model: a fitted ``HistGradientBoostingClassifier``.

    Raises:
        RuntimeError: this scikit-learn's booster does not expose its trees (``_predictors``).
    """

    def __init__(self, model: HistGradientBoostingClassifier) -> None:
        self.model = model
        self.iterations = [_HeapTrees(trees) for trees in _predictors(model)]

    def binned(self, x: np.ndarray) -> np.ndarray:
        """Bin points as the booster binned its training data.

        Args:
            x: points, (N, features).

        Returns:
            (N, features) bin indices, C-contiguous.
        """
        return np.ascontiguousarray(self.model._bin_mapper.transform(x))

    def baseline(self, n: int) -> np.ndarray:
        """The raw predictions before the first iteration.

        Args:
            n: number of points.

        Returns:
            (n, trees per iteration) copies of the booster's baseline prediction.
        """
        start = np.asarray(self.model._baseline_prediction, dtype=np.float64).reshape(1, -1)
        return np.repeat(start, n, axis=0)

    def labels(self, raw: np.ndarray) -> np.ndarray:
        """The class of raw predictions, as ``predict`` decides it.

        Args:
            raw: raw predictions, (N, trees per iteration).

        Returns:
            (N,) class labels.
        """
        classes = self.model.classes_
        if raw.shape[1] == 1:
            return classes[(raw[:, 0] > 0).astype(np.intp)]
        return classes[np.argmax(raw, axis=1)]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The booster's predictions, equal to its ``predict``.

        Args:
            x: points, (N, features).

        Returns:
            (N,) class labels.
        """
        binned = self.binned(x)
        raw = self.baseline(len(x))
        for heap in self.iterations:
            raw += heap.value.ravel()[heap.bottom_slots(binned)]
        return self.labels(raw)


class _HeapTrees:
    """The trees of one boosting iteration laid out as complete binary trees (heap order).

    Per tree and slot: ``code`` = feature * 256 + bin threshold of a split (a point goes right when
    its bin exceeds the threshold), 255 elsewhere (feature 0, always left); ``split`` marks the real
    splits; ``value`` holds each bottom slot's leaf value (a leaf above the bottom owns the slot
    reached by always going left from it).
    """

    def __init__(self, trees: list) -> None:
        self.depth = max(int(tree.nodes["depth"].max()) for tree in trees)
        slots, width = 2 ** (self.depth + 1) - 1, 2**self.depth
        self.code = np.full((len(trees), slots), 255, dtype=np.intp)
        self.split = np.zeros((len(trees), slots), dtype=bool)
        self.value = np.zeros((len(trees), width))
        for t, tree in enumerate(trees):
            nodes = tree.nodes
            leaf = nodes["is_leaf"].astype(bool)
            slot = np.zeros(len(nodes), dtype=np.int64)
            for level in range(self.depth):
                parents = np.flatnonzero(~leaf & (nodes["depth"] == level))
                slot[nodes["left"][parents]] = 2 * slot[parents] + 1
                slot[nodes["right"][parents]] = 2 * slot[parents] + 2
            inner = slot[~leaf]
            self.code[t, inner] = nodes["feature_idx"][~leaf] * 256 + nodes["bin_threshold"][~leaf]
            self.split[t, inner] = True
            below = self.depth - nodes["depth"][leaf].astype(np.int64)
            self.value[t, (slot[leaf] + 1) * 2**below - 1 - (width - 1)] = nodes["value"][leaf]

    def bottom_slots(self, binned: np.ndarray) -> np.ndarray:
        """(N, trees): the bottom slot (index into ``value``, flattened) each binned point
        (N, features) reaches in each tree; slot s has the children 2s + 1 and 2s + 2."""
        trees, width = self.code.shape[0], 2**self.depth
        flat = binned.ravel()
        row_start = (np.arange(len(binned)) * binned.shape[1])[:, None]
        base = (np.arange(trees) * self.code.shape[1])[None, :]
        flat_code = self.code.ravel()
        slot = np.zeros((len(binned), trees), dtype=np.intp)
        for _ in range(self.depth):
            code = flat_code[base + slot]
            slot = 2 * slot + 1 + (flat[row_start + (code >> 8)] > (code & 255))
        return (np.arange(trees) * width)[None, :] + slot - (width - 1)


def canonical_order(codes: np.ndarray) -> np.ndarray:
    """A column order that depends only on each column's rank pattern.

    Tree ensembles break ties between equally good splits by the order in which they visit
    features; presenting the columns in this order makes the fitted importances exactly invariant
    to permuting (and to positively rescaling) the code dimensions.

    Args:
        codes: (N, D) codes.

    Returns:
        (D,) a permutation of the columns, by the SHA-256 of each column's ranks.
    """
    ranks = np.argsort(np.argsort(codes, axis=0, kind="stable"), axis=0, kind="stable")
    digests = [hashlib.sha256(column.astype(np.int64).tobytes()).hexdigest() for column in ranks.T]
    return np.argsort(np.array(digests), kind="stable")


def importance_matrix(
    ctx: EvalContext, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One fit per factor of the protocol's ``dci.estimator``, on the codes in canonical order.

    Args:
        ctx: the evaluation context (protocol, seeds, parallel workers).
        x_train: training codes, (N, D).
        y_train: training factors, (N, K).
        x_test: test codes, (M, D).
        y_test: test factors, (M, K).

    Returns:
        (importance, train_accuracy, test_accuracy): R (D, K) in the codes' own column order, and
        the per-factor train and test accuracies (K,).
    """
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
    # one OpenMP thread per fit (oversubscribed OpenMP threads spin and slow HistGradientBoosting
    # down by an order of magnitude). gbt's fits run in parallel threads (its tree builder releases
    # the GIL); the histogram boosters grow their trees in Python and run one after another, which
    # is faster than threads contending for the GIL
    ordered = [jobs[k] for k in schedule]
    with threadpool_limits(1, user_api="openmp"):
        if estimator == "gbt":
            results = ctx.parallel(_fit_one, ordered)
        else:
            results = [_fit_one(job) for job in ordered]
    done = dict(zip(schedule, results, strict=True))
    fits = [done[k] for k in range(len(jobs))]
    importance = np.empty((len(order), len(fits)))
    importance[order] = np.stack([f[0] for f in fits], axis=1)
    return importance, np.array([f[1] for f in fits]), np.array([f[2] for f in fits])


def compute(ctx: EvalContext) -> dict[str, float]:
    """DCI of the context's representation, on the protocol's train and test points.

    Args:
        ctx: the evaluation context (protocol, points, seeds).

    Returns:
        ``disentanglement``, ``completeness``, ``informativeness_train``, ``informativeness_test``.

    Raises:
        MetricError: fewer than two code dimensions or two factors, or a factor whose train points
            take a single value (``check_classes``).
    """
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
