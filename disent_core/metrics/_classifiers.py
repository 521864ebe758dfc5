"""Logistic-regression factories shared by the BetaVAE score and explicitness."""

from __future__ import annotations

from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from disent_core.metrics.protocol import LogisticSolver


def logistic_regression(solver: LogisticSolver, seed: int) -> ClassifierMixin:
    """``liblinear_ovr``: what ``LogisticRegression()`` was in scikit-learn < 0.22 (liblinear,
    one-vs-rest, C=1, intercept regularised); ``lbfgs``: today's multinomial default.

    Args:
        solver: ``"liblinear_ovr"`` or ``"lbfgs"``.
        seed: the estimator's ``random_state``.

    Returns:
        An unfitted scikit-learn classifier.
    """
    if solver == "liblinear_ovr":
        return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=seed))
    return LogisticRegression(solver="lbfgs", random_state=seed)
