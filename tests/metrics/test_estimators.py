"""Closed-form and reference checks of the estimators, without any representation."""

import warnings

import numpy as np
import pytest
import scipy.linalg
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from disent_core.metrics.dci import HeapBooster, completeness, disentanglement, residual_importance
from disent_core.metrics.irs import irs_score
from disent_core.metrics.modularity import modularity
from disent_core.metrics.sampling import (
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
    stream_rng,
    stream_seed,
)
from disent_core.metrics.sap import (
    OneVsRest,
    avg_diff_top_two,
    continuous_score_matrix,
    discrete_score_matrix,
    linear_svc_1d,
)
from disent_core.metrics.unsupervised import (
    gaussian_total_correlation,
    gaussian_wasserstein_correlation,
    mean_pairwise_mutual_info,
)

DIAG = np.diag(5.0 * np.ones(5))
EMPTY_CODES = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


# --- DCI on hand-made importance matrices (dlib's dci_test.py) ---------------------------------
@pytest.mark.parametrize(
    ("matrix", "d", "c"),
    [
        (DIAG, 1.0, 1.0),
        (EMPTY_CODES, 1.0, 1.0),
        (np.vstack([DIAG, DIAG]), 1.0, 1.0 - np.log(2) / np.log(10)),
        (DIAG[:2, :], 1.0, 1.0),
        (np.hstack([DIAG, DIAG]), 1.0 - np.log(2) / np.log(10), 1.0),
    ],
    ids=["diagonal", "empty-codes", "redundant-codes", "missed-factors", "one-code-two-factors"],
)
def test_dci_closed_form(matrix, d, c):
    assert disentanglement(matrix) == pytest.approx(d)
    assert completeness(matrix) == pytest.approx(c)


def test_dci_zero_importance_is_zero():
    assert disentanglement(np.zeros((10, 10))) == pytest.approx(0.0)
    assert completeness(np.zeros((10, 10))) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_residual_importance_is_gradient_boostings(num_classes):
    rng = np.random.default_rng(num_classes)
    y = rng.integers(0, num_classes, 2000)
    x = np.column_stack(
        [
            y / num_classes + 0.2 * rng.normal(size=2000),
            y / num_classes + 0.5 * rng.normal(size=2000),
            (y % 2) + 0.5 * rng.normal(size=2000),
            rng.normal(size=(2000, 3)),
        ]
    )
    expected = GradientBoostingClassifier(random_state=0).fit(x, y).feature_importances_
    booster = HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_depth=3, min_samples_leaf=1, early_stopping=False, random_state=0
    ).fit(x, y)
    importance, predicted = residual_importance(HeapBooster(booster), x, y)
    assert importance.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(importance, expected, rtol=0, atol=0.03)
    np.testing.assert_array_equal(predicted, booster.predict(x))


@pytest.mark.parametrize("num_classes", [2, 5])
def test_heap_booster_predicts_as_scikit_learn(num_classes):
    rng = np.random.default_rng(10 + num_classes)
    y = rng.integers(0, num_classes, 3000)
    x = np.column_stack([y + rng.normal(size=3000), rng.normal(size=(3000, 3))])
    booster = HistGradientBoostingClassifier(
        max_iter=30, learning_rate=0.1, max_depth=3, min_samples_leaf=1, early_stopping=False, random_state=0
    ).fit(x[:2000], y[:2000])
    fresh = np.vstack([x[2000:], x[2000:] * 3.0])  # unseen points, many outside the training range
    np.testing.assert_array_equal(HeapBooster(booster).predict(fresh), booster.predict(fresh))


# --- modularity on hand-made MI matrices (dlib's modularity_explicitness_test.py) ---------------
@pytest.mark.parametrize(
    ("matrix", "expected"),
    [
        (DIAG, 1.0),
        (EMPTY_CODES, 2.0 / 3.0),
        (np.zeros((10, 10)), 0.0),
        (np.vstack([DIAG, DIAG]), 1.0),
        (DIAG[:2, :], 1.0),
        (np.hstack([DIAG, DIAG]), 1.0 - 1.0 / 9.0),
    ],
    ids=["diagonal", "empty-codes", "zero", "redundant-codes", "missed-factors", "one-code-two-factors"],
)
def test_modularity_closed_form(matrix, expected):
    assert modularity(matrix) == pytest.approx(expected)


# --- discretiser and mutual information ---------------------------------------------------------
def test_histogram_discretizer_matches_dlib_formula():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 4)) * [1, 10, 1e-3, 0]
    values[:, 3] = 2.5  # a constant column
    reference = np.stack(
        [np.digitize(v, np.histogram(v, 20)[1][:-1]) for v in values.T], axis=1
    )
    binned = histogram_discretize(values, 20)
    np.testing.assert_array_equal(binned, reference)
    assert binned.min() >= 1 and binned.max() <= 20


def test_mutual_info_matches_sklearn():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 20, size=(3000, 6))
    a[:, 1] = a[:, 0] // 2 + rng.integers(0, 2, 3000)
    a[:, 5] = 7  # single label
    b = rng.integers(0, [3, 6, 40, 1], size=(3000, 4))
    b[:, 0] = a[:, 0] % 3
    expected = np.array([[mutual_info_score(b[:, k], a[:, j]) for k in range(4)] for j in range(6)])
    np.testing.assert_allclose(discrete_mutual_info(a, b), expected, rtol=0, atol=1e-12)
    entropy = [mutual_info_score(b[:, k], b[:, k]) for k in range(4)]
    np.testing.assert_allclose(discrete_entropy(b), entropy, rtol=0, atol=1e-12)


def test_streams_are_deterministic_and_independent():
    assert stream_rng(3, "points/train").integers(0, 1 << 30, 5).tolist() == (
        stream_rng(3, "points/train").integers(0, 1 << 30, 5).tolist()
    )
    assert stream_rng(3, "points/train").random() != stream_rng(3, "points/test").random()
    assert stream_rng(3, "mig").random() != stream_rng(4, "mig").random()
    assert 0 <= stream_seed(3, "dci/estimator/0") < 2**31
    with pytest.raises(ValueError, match="non-negative"):
        stream_rng(-1, "x")


# --- SAP, unsupervised, IRS ---------------------------------------------------------------------
def test_sap_continuous_matches_dlib_loop():
    rng = np.random.default_rng(2)
    codes = rng.normal(size=(400, 5))
    codes[:, 4] = 1.0
    factors = rng.integers(0, 5, size=(400, 3)).astype(np.float64)
    expected = np.zeros((5, 3))
    for j in range(5):
        for k in range(3):
            cov = np.cov(codes[:, j], factors[:, k], ddof=1)
            expected[j, k] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
    np.testing.assert_allclose(continuous_score_matrix(codes, factors), expected, atol=1e-12)
    assert avg_diff_top_two(np.array([[0.9, 0.2], [0.1, 0.5], [0.3, 0.4]])) == pytest.approx((0.6 + 0.1) / 2)


def _reference_svc(x: np.ndarray, y: np.ndarray) -> LinearSVC:
    """scikit-learn's LinearSVC as SAP configures it, solved far below its default tolerance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LinearSVC(C=0.01, class_weight="balanced", dual=False, tol=1e-12, max_iter=100_000).fit(
            x[:, None], y
        )


@pytest.mark.parametrize(
    ("num_classes", "scale", "ties"),
    [(2, 1.0, False), (2, 100.0, False), (3, 1.0, True), (6, 5.0, False), (40, 0.3, False), (10, 1e-3, True)],
)
def test_linear_svc_1d_solves_liblinears_problem(num_classes, scale, ties):
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(0, num_classes, size=(1500, 1))
    x = scale * (labels[:, 0] / num_classes + 0.3 * rng.normal(size=1500))
    if ties:
        x = np.round(x, 1)
    problems = OneVsRest.of(labels, 0.01)
    weight, intercept = linear_svc_1d(x, problems)
    reference = _reference_svc(x, labels[:, 0])
    np.testing.assert_allclose(weight, reference.coef_.ravel(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(intercept, reference.intercept_, rtol=0, atol=1e-6)
    test = scale * rng.normal(size=2000) + x.mean()
    predicted = problems.predict(0, weight, intercept, test)
    assert np.mean(predicted == reference.predict(test[:, None])) >= 0.999


def test_sap_score_matrix_matches_linear_svc():
    rng = np.random.default_rng(6)
    sizes = np.array([2, 3, 12])
    y_train, y_test = rng.integers(0, sizes, size=(2000, 3)), rng.integers(0, sizes, size=(1000, 3))
    mixing = rng.normal(size=(3, 4))
    x_train = (y_train / sizes) @ mixing + 0.2 * rng.normal(size=(2000, 4))
    x_test = (y_test / sizes) @ mixing + 0.2 * rng.normal(size=(1000, 4))
    x_train[:, 3] = x_test[:, 3] = 0.5  # a constant code
    expected = np.empty((4, 3))
    for j in range(4):
        for k in range(3):
            predicted = _reference_svc(x_train[:, j], y_train[:, k]).predict(x_test[:, j : j + 1])
            expected[j, k] = np.mean(predicted == y_test[:, k])
    scores = discrete_score_matrix(0.01, x_train, y_train, x_test, y_test)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=2e-3)


def test_gaussian_total_correlation_is_the_kl_to_the_marginals():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.1 * np.eye(4)
    diag = np.diag(np.diag(cov))
    kl = 0.5 * (np.trace(np.linalg.inv(diag) @ cov) - 4 + np.log(np.linalg.det(diag) / np.linalg.det(cov)))
    assert gaussian_total_correlation(cov) == pytest.approx(kl)
    assert gaussian_total_correlation(np.diag([1.0, 2.0])) == pytest.approx(0.0)
    padded = np.zeros((5, 5))
    padded[:4, :4] = cov  # a constant dimension is left out
    assert gaussian_total_correlation(padded) == pytest.approx(kl)
    assert gaussian_total_correlation(np.zeros((3, 3))) == 0.0
    assert gaussian_total_correlation(np.ones((2, 2))) == float("inf")


def test_gaussian_wasserstein_correlation_formula():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    expected = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None]))
    assert gaussian_wasserstein_correlation(cov) == pytest.approx(float(np.real(expected)))
    assert gaussian_wasserstein_correlation(np.diag([1.0, 3.0])) == pytest.approx(0.0, abs=1e-12)


def test_mean_pairwise_mutual_info():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 1))
    assert mean_pairwise_mutual_info(x, 20) == 0.0
    dependent = mean_pairwise_mutual_info(np.hstack([x, x]), 20)
    independent = mean_pairwise_mutual_info(rng.normal(size=(2000, 2)), 20)
    assert dependent > 2.0 > 0.2 > independent


def test_irs_perfect_and_noise():
    rng = np.random.default_rng(5)
    factors = rng.integers(0, 10, size=(3000, 3))
    assert irs_score(factors, factors.astype(float), 0.99) == pytest.approx(1.0)
    assert irs_score(factors, rng.normal(size=(3000, 3)), 0.99) < 0.45
