"""BetaVAE score (disentanglement_lib's ``beta_vae_sklearn``).

Paper: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017.

Each training point: pick a factor k uniformly; draw two batches of ``batch_size`` factor vectors
and copy factor k from the first batch into the second (pair i shares v_k); encode both.

    feature = 1/B * sum_i | z(x_i^1) - z(x_i^2) |,   label = k

A logistic regression predicts k from the feature; ``train_accuracy`` and ``eval_accuracy`` are
its accuracies on ``num_train`` and on ``num_eval`` fresh points.

Deviations from disentanglement_lib: all points are sampled at once and encoded in large chunks
(the same distribution as dlib's per-point loop, not the same random numbers), each distinct grid
point once on datasets without a random transform (``EvalContext.codes_of_grid_points``: about
685,000 of dSprites' images for the 1.92 million observations of dlib2019); the solver is
explicit (``liblinear_ovr`` reproduces the scikit-learn default of dlib's runs; dlib calls
``LogisticRegression()`` whose default changed in scikit-learn 0.22), with a ``random_state``
derived from the evaluation seed. Fewer than two scored factors raise ``MetricError``.
"""

from __future__ import annotations

import joblib
import numpy as np

from disent_core.metrics._classifiers import logistic_regression
from disent_core.metrics.base import EvalContext, MetricSpec, require


def _mean_abs_difference(codes: np.ndarray) -> np.ndarray:
    half = codes.shape[1] // 2
    return np.abs(codes[:, :half] - codes[:, half:]).mean(axis=1)


def sample_features(
    ctx: EvalContext, num_points: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``num_points`` (feature (D,), label) pairs: labels index the scored factors.

    Args:
        ctx: the evaluation (protocol's ``beta_vae.batch_size`` pairs per point).
        num_points: how many points.
        rng: the stream labels, factors and nuisance factors are drawn from.

    Returns:
        (features (num_points, D) float64: mean |z(x^1) - z(x^2)| over the batch,
        labels (num_points,) int64 in [0, K)).
    """
    batch = ctx.protocol.beta_vae.batch_size
    labels = rng.integers(0, ctx.num_factors, size=num_points)
    first = ctx.sample_latent(num_points * batch, rng).reshape(num_points, batch, -1)
    second = ctx.sample_latent(num_points * batch, rng).reshape(num_points, batch, -1)
    columns = ctx.scored[labels]
    rows = np.arange(num_points)
    second[rows, :, columns] = first[rows, :, columns]
    return ctx.encode_groups((first, second), rng, _mean_abs_difference), labels


def compute(ctx: EvalContext) -> dict[str, float]:
    """Train a logistic regression to predict the fixed factor from the BetaVAE features.

    Args:
        ctx: the evaluation.

    Returns:
        ``train_accuracy`` and ``eval_accuracy``, each in [0, 1].

    Raises:
        MetricError: fewer than two scored factors, or a single training label.
    """
    settings = ctx.protocol.beta_vae
    require(ctx.num_factors >= 2, f"the BetaVAE score needs two scored factors, got {ctx.num_factors}")
    rng = ctx.rng("beta_vae")
    train_x, train_y = sample_features(ctx, settings.num_train, rng)
    require(len(np.unique(train_y)) >= 2, "BetaVAE score: every training label is the same; raise num_train")
    model = logistic_regression(settings.solver, ctx.estimator_seed("beta_vae/estimator"))
    with joblib.parallel_config(backend="threading", n_jobs=ctx.n_jobs):
        model.fit(train_x, train_y)
    eval_x, eval_y = sample_features(ctx, settings.num_eval, rng)
    return {
        "train_accuracy": float(np.mean(model.predict(train_x) == train_y)),
        "eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y)),
    }


SPEC = MetricSpec(name="beta_vae", keys=("train_accuracy", "eval_accuracy"), compute=compute)
