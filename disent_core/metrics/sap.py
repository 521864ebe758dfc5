"""Separated attribute predictability (SAP).

Paper: Kumar, Sattigeri & Balakrishnan, "Variational Inference of Disentangled Latent Concepts
from Unlabeled Observations", ICLR 2018, Section 3.

Score matrix S[j, k] (code j, factor k):

- discrete factors (dlib's study setting): test accuracy of
  ``LinearSVC(C=0.01, class_weight="balanced")`` trained to predict v_k from the single scalar z_j;
- continuous factors: S[j, k] = Cov(z_j, v_k)^2 / (Var z_j Var v_k), 0 when Var z_j <= 1e-12.

    SAP = 1/K * sum_k ( S_(1)k - S_(2)k ),   the gap between the two best codes for each factor.

Deviations from disentanglement_lib: the linear SVMs are not fitted by liblinear but solved
exactly, all at once (``linear_svc_1d``). Each is LinearSVC's problem: one-vs-rest (one problem
for a binary factor), squared hinge loss, L2 penalty on the weight and on the intercept, balanced
class weights applied as liblinear applies them. liblinear stops at a tolerance (1e-4, relative
to the first gradient), the exact solution does not, so a test point lying within that tolerance
of a decision boundary can be classified differently: accuracies agree with scikit-learn's
LinearSVC to a few test points in 10,000 at most (dlib's scikit-learn used the dual solver, which
stops at a different point again). The fits use no randomness. Fewer than two code dimensions
raise ``MetricError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from disent_core.metrics.base import EvalContext, MetricSpec, check_classes, require
from disent_core.metrics.protocol import Protocol


def avg_diff_top_two(matrix: np.ndarray) -> float:
    """Mean over columns of (largest - second largest) entry.

    Args:
        matrix: (D, K) scores, D >= 2.

    Returns:
        The mean gap over the K columns, >= 0.
    """
    ordered = np.sort(matrix, axis=0)
    return float(np.mean(ordered[-1] - ordered[-2]))


def continuous_score_matrix(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Squared correlations (D, K), 0 for (near-)constant codes, dlib's continuous mode.

    Args:
        codes: (N, D) float codes.
        factors: (N, K) float factors.

    Returns:
        (D, K) float64 squared correlations in [0, 1] (0 where Var z_j <= 1e-12).
    """
    z = codes - codes.mean(axis=0)
    v = factors - factors.mean(axis=0)
    n = len(codes) - 1
    cov = z.T @ v / n
    var_z = (z * z).sum(axis=0) / n
    var_v = (v * v).sum(axis=0) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        score = cov**2 / (var_z[:, None] * var_v[None, :])
    return np.where(var_z[:, None] > 1e-12, score, 0.0)


# --- LinearSVC on one feature, solved exactly -------------------------------------------------


@dataclass(frozen=True)
class OneVsRest:
    """The binary problems that ``LinearSVC(C, class_weight="balanced")`` solves for each factor.

    A factor with m > 2 classes gives m one-vs-rest problems: class c positive, with the cost
    C * N / (m * N_c), and the rest negative with the cost C (liblinear leaves the rest
    unweighted). A binary factor gives one problem: its second class positive, each class with
    its own balanced cost. Classes get ids unique over all factors.
    """

    classes: tuple[np.ndarray, ...]
    """Per factor, its sorted training labels."""
    class_ids: np.ndarray
    """(N, K) class id of every training point for every factor."""
    class_sizes: np.ndarray
    """Training points per class id."""
    positive: np.ndarray
    """(P,) class id of the positive class of every problem."""
    cost_pos: np.ndarray
    cost_neg: np.ndarray
    problems: tuple[np.ndarray, ...]
    """Per factor, the indices of its problems."""

    @classmethod
    def of(cls, labels: np.ndarray, c: float) -> OneVsRest:
        """The problems of integer labels (N, K) with the SVM cost ``c``.

        Args:
            labels: (N, K) integer training labels.
            c: LinearSVC's C (> 0).

        Returns:
            The problems of all K factors, classes numbered across factors.
        """
        n = len(labels)
        classes, ids, sizes, positive, cost_pos, cost_neg, problems = [], [], [], [], [], [], []
        offset = first = 0
        for column in labels.T:
            values, dense, count = np.unique(column, return_inverse=True, return_counts=True)
            m = len(values)
            cost = c * n / (m * count)
            if m == 2:
                positive.append([offset + 1])
                cost_pos.append(cost[1:])
                cost_neg.append(cost[:1])
            else:
                positive.append(offset + np.arange(m))
                cost_pos.append(cost)
                cost_neg.append(np.full(m, c))
            problems.append(np.arange(first, first + len(positive[-1])))
            classes.append(values)
            ids.append(offset + dense)
            sizes.append(count)
            first += len(positive[-1])
            offset += m
        return cls(
            tuple(classes),
            np.stack(ids, axis=1),
            np.concatenate(sizes),
            np.concatenate(positive),
            np.concatenate(cost_pos),
            np.concatenate(cost_neg),
            tuple(problems),
        )

    def predict(self, k: int, weight: np.ndarray, intercept: np.ndarray, x: np.ndarray) -> np.ndarray:
        """LinearSVC's prediction for factor ``k``: the sign of its one decision value for two
        classes, else the class with the largest decision value (the first on ties).

        Args:
            k: the factor.
            weight: (P,) weights of every problem (``linear_svc_1d``).
            intercept: (P,) intercepts of every problem.
            x: (N,) values of the one code dimension.

        Returns:
            (N,) predicted labels of factor ``k``, from its training classes.
        """
        index = self.problems[k]
        w, b = weight[index], intercept[index]
        if len(self.classes[k]) == 2:
            return self.classes[k][(w[0] * x + b[0] > 0).astype(np.int64)]
        return self.classes[k][np.argmax(x[:, None] * w + b, axis=1)]


class _SortedSums:
    """Counts and sums of x and x^2 of the points of one code with x below a threshold, over all
    points and over the points of one class: prefix sums over the points sorted by x, and per
    class over its points in that order (class g's points are the segment of ``keys`` between
    g * (N + 1) and (g + 1) * (N + 1), key = g * (N + 1) + rank)."""

    def __init__(self, x: np.ndarray, class_ids: np.ndarray) -> None:
        order = np.argsort(x, kind="stable")
        self.x = x[order]
        self.stride = len(x) + 1
        self.all = _running_sums(self.x)
        self.keys = np.sort((class_ids[order] * self.stride + np.arange(len(x))[:, None]).ravel())
        self.per_class = _running_sums(self.x[self.keys % self.stride])

    def segment_start(self, class_id: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.keys, class_id * self.stride)

    def below(self, t: np.ndarray, class_id: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(3, P) sums over all points and over the points of class ``class_id`` with x < t."""
        rank = np.searchsorted(self.x, t)
        end = np.searchsorted(self.keys, class_id * self.stride + rank)
        return self.all[:, rank], self.per_class[:, end] - self.per_class[:, start]


def _running_sums(x: np.ndarray) -> np.ndarray:
    """(3, N + 1): counts, running sums of x and of x^2, from 0."""
    out = np.zeros((3, len(x) + 1))
    out[0, 1:] = np.arange(1, len(x) + 1)
    np.cumsum(x, out=out[1, 1:])
    np.cumsum(x * x, out=out[2, 1:])
    return out


def linear_svc_1d(
    x: np.ndarray, problems: OneVsRest, max_iter: int = 100, gradient_tol: float = 1e-10
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and intercepts (P,) of every problem, LinearSVC fitted on the single feature ``x``.

    Each problem is liblinear's primal with ``intercept_scaling=1``:

        min over (w, b) of  1/2 (w^2 + b^2) + sum_i C_i max(0, 1 - y_i (w x_i + b))^2

    The objective is convex, differentiable and piecewise quadratic. The points with a positive
    loss are, per class, those on one side of a threshold on x, so the gradient and Hessian come
    from prefix sums over the sorted codes in O(log N) per problem. Newton steps are taken for all
    problems at once. A problem is solved when the full step stays on the quadratic piece it was
    computed on (same points with positive loss, same sign of w): it then lands on the minimum of
    that piece, the optimum. Other steps are shortened until they decrease the objective (Armijo),
    and iterations stop early when the gradient is below ``gradient_tol`` (the objective is
    1-strongly convex, so (w, b) is then within ``gradient_tol`` of the optimum) or the objective
    no longer decreases in float64.

    Args:
        x: (N,) float training values of one code dimension.
        problems: the P binary problems of the training labels (``OneVsRest.of``).
        max_iter: the most Newton iterations.
        gradient_tol: the gradient norm (max over w, b) at which a problem counts as solved.

    Returns:
        (weights (P,), intercepts (P,)), float64.
    """
    sums = _SortedSums(x, problems.class_ids)
    positive, cp, cn = problems.positive, problems.cost_pos, problems.cost_neg
    start = sums.segment_start(positive)
    pos_total = sums.per_class[:, start + problems.class_sizes[positive]] - sums.per_class[:, start]
    neg_total = sums.all[:, -1:] - pos_total

    def losing(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(3, P) sums over the positives with w x + b < 1 and the negatives with w x + b > -1
        (points on the margin, whose loss and gradient are 0, may be counted too)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            t_pos = np.where(w != 0, (1 - b) / w, np.where(b < 1, np.inf, -np.inf))
            t_neg = np.where(w != 0, (-1 - b) / w, np.where(b > -1, np.inf, -np.inf))
        _, pos_below = sums.below(t_pos, positive, start)
        all_below, neg_pos_below = sums.below(t_neg, positive, start)
        pos = np.where(w < 0, pos_total - pos_below, pos_below)
        neg_below = all_below - neg_pos_below
        neg = np.where(w > 0, neg_total - neg_below, neg_below)
        return pos, neg

    def objective(w: np.ndarray, b: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        pos_loss = (1 - b) ** 2 * pos[0] - 2 * (1 - b) * w * pos[1] + w * w * pos[2]
        neg_loss = (1 + b) ** 2 * neg[0] + 2 * (1 + b) * w * neg[1] + w * w * neg[2]
        return 0.5 * (w * w + b * b) + cp * pos_loss + cn * neg_loss

    def same_piece(w: np.ndarray, new_w: np.ndarray, pos: np.ndarray, neg: np.ndarray, new_pos: np.ndarray,
                   new_neg: np.ndarray) -> np.ndarray:
        return (np.sign(w) == np.sign(new_w)) & (pos[0] == new_pos[0]) & (neg[0] == new_neg[0])

    w, b = np.zeros(len(positive)), np.zeros(len(positive))
    pos, neg = losing(w, b)
    solved = np.zeros(len(positive), dtype=bool)
    for _ in range(max_iter):
        grad_w = w + 2 * cp * (w * pos[2] + (b - 1) * pos[1]) + 2 * cn * (w * neg[2] + (b + 1) * neg[1])
        grad_b = b + 2 * cp * (w * pos[1] + (b - 1) * pos[0]) + 2 * cn * (w * neg[1] + (b + 1) * neg[0])
        # the objective is 1-strongly convex: |(w, b) - optimum| <= |gradient|
        solved |= np.maximum(np.abs(grad_w), np.abs(grad_b)) <= gradient_tol
        if solved.all():
            break
        h_ww = 1 + 2 * (cp * pos[2] + cn * neg[2])
        h_wb = 2 * (cp * pos[1] + cn * neg[1])
        h_bb = 1 + 2 * (cp * pos[0] + cn * neg[0])
        det = h_ww * h_bb - h_wb * h_wb
        step_w = np.where(solved, 0.0, (h_wb * grad_b - h_bb * grad_w) / det)
        step_b = np.where(solved, 0.0, (h_wb * grad_w - h_ww * grad_b) / det)
        # the full Newton step minimises the current piece's quadratic: when it stays on the
        # piece, it is the optimum
        new_pos, new_neg = losing(w + step_w, b + step_b)
        landed = ~solved & same_piece(w, w + step_w, pos, neg, new_pos, new_neg)
        slope = grad_w * step_w + grad_b * step_b
        current = objective(w, b, pos, neg)
        scale = np.where(solved | landed, 0.0, 1.0)
        for _ in range(50):  # Armijo backtracking for the others
            trial_pos, trial_neg = losing(w + scale * step_w, b + scale * step_b)
            new = objective(w + scale * step_w, b + scale * step_b, trial_pos, trial_neg)
            short = (scale > 0) & (new > current + 1e-4 * scale * slope)
            if not short.any():
                break
            scale = np.where(short, scale / 2, scale)
        stuck = short  # no decrease left within rounding: as close as float64 gets
        scale = np.where(landed, 1.0, np.where(stuck, 0.0, scale))
        w, b = w + scale * step_w, b + scale * step_b
        solved |= landed | stuck
        pos, neg = losing(w, b)
    return w, b


def discrete_score_matrix(
    c: float, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> np.ndarray:
    """Test accuracies (D, K) of LinearSVC(C=c, class_weight="balanced") per code and factor.

    Args:
        c: LinearSVC's C (> 0).
        x_train: (N, D) float training codes.
        y_train: (N, K) integer training factors.
        x_test: (M, D) float test codes.
        y_test: (M, K) integer test factors.

    Returns:
        (D, K) float64 accuracies in [0, 1].
    """
    problems = OneVsRest.of(y_train, c)
    out = np.empty((x_train.shape[1], y_train.shape[1]))
    for j in range(x_train.shape[1]):
        weight, intercept = linear_svc_1d(x_train[:, j], problems)
        for k in range(y_train.shape[1]):
            out[j, k] = np.mean(problems.predict(k, weight, intercept, x_test[:, j]) == y_test[:, k])
    return out


def compute(ctx: EvalContext) -> dict[str, float]:
    """SAP on the shared points: discrete (train/test SVMs) or continuous (squared correlations).

    Args:
        ctx: the evaluation.

    Returns:
        ``SAP_score`` in [0, 1].

    Raises:
        MetricError: fewer than two code dimensions, or (discrete) a factor with a single class.
    """
    settings = ctx.protocol.sap
    train = ctx.points("train", settings.num_train)
    require(train.codes.shape[1] >= 2, f"SAP needs at least two code dimensions, got {train.codes.shape[1]}")
    if settings.continuous_factors:
        matrix = continuous_score_matrix(train.codes, train.factors.astype(np.float64))
    else:
        test = ctx.points("test", settings.num_test)
        check_classes(train.factors, ctx, "SAP", "train points")
        matrix = discrete_score_matrix(settings.svc_c, train.codes, train.factors, test.codes, test.factors)
    return {"SAP_score": avg_diff_top_two(matrix)}


def _points(protocol: Protocol) -> dict[str, int]:
    settings = protocol.sap
    if settings.continuous_factors:
        return {"train": settings.num_train}
    return {"train": settings.num_train, "test": settings.num_test}


SPEC = MetricSpec(name="sap", keys=("SAP_score",), compute=compute, points=_points)
