"""FactorVAE score (disentanglement_lib's ``factor_vae_metric``).

Paper: Kim & Mnih, "Disentangling by Factorising", ICML 2018.

Global variances s_j^2 of every code dimension come from ``num_variance_estimate`` i.i.d.
observations (ddof 1); dimension j is active when s_j >= ``prune_threshold`` (0.05 in dlib's
study). Each vote: pick a factor k uniformly, draw ``batch_size`` factor vectors that share one
value of v_k, encode them, and vote for

    j* = argmin over active j of Var_batch(z_j) / s_j^2        (ddof 1)

The classifier maps each code dimension to the factor with most training votes;
``train_accuracy`` / ``eval_accuracy`` = fraction of votes (train / ``num_eval`` fresh ones) that
it classifies correctly. ``num_active_dims`` is reported as well.

Deviations from disentanglement_lib: votes are sampled at once and encoded in large chunks (same
distribution, not the same random numbers), each distinct grid point once on datasets without a
random transform (``EvalContext.codes_of_grid_points``); the global variances are taken from the shared
``train`` point set. With ``index_quirk`` (protocol ``dlib2019``) dlib's bug is reproduced: j* is
the argmin's position *within the active dimensions* but the vote is recorded at that position in
the full dimension array, and ``num_active_dims`` is the number of all dimensions. Without it
(``corrected``) votes go to the true code index and ``num_active_dims`` counts the active ones.
The quirk relabels vote columns injectively, so it changes ``num_active_dims`` and the stored
votes but never the accuracies.
Dimensions with zero global variance are never active (dlib would divide 0 by 0 with a threshold
of 0). With no active dimension both accuracies are 0, as in dlib.
"""

from __future__ import annotations

import numpy as np

from disent_core.metrics.base import EvalContext, MetricSpec


def _local_variance(codes: np.ndarray) -> np.ndarray:
    return codes.var(axis=1, ddof=1)


def sample_votes(
    ctx: EvalContext, num_votes: int, rng: np.random.Generator, global_var: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Vote counts (K, D) of ``num_votes`` fixed-factor batches.

    Args:
        ctx: the evaluation (protocol's ``factor_vae.batch_size`` observations per batch).
        num_votes: how many batches.
        rng: the stream labels, factors and nuisance factors are drawn from.
        global_var: (D,) global variance of each code dimension (ddof 1).
        active: (D,) bool, the dimensions that may receive a vote (at least one True).

    Returns:
        (K, D) int64: votes[k, j] counts batches with factor k fixed that voted for dimension j
        (j the position among the active dimensions under ``index_quirk``).
    """
    batch = ctx.protocol.factor_vae.batch_size
    labels = rng.integers(0, ctx.num_factors, size=num_votes)
    factors = ctx.sample_latent(num_votes * batch, rng).reshape(num_votes, batch, -1)
    columns = ctx.scored[labels]
    rows = np.arange(num_votes)
    factors[rows, :, columns] = factors[rows, 0, columns][:, None]
    local = ctx.encode_groups((factors,), rng, _local_variance)
    argmin = np.argmin(local[:, active] / global_var[active], axis=1)
    index = argmin if ctx.protocol.factor_vae.index_quirk else np.flatnonzero(active)[argmin]
    votes = np.zeros((ctx.num_factors, len(global_var)), dtype=np.int64)
    np.add.at(votes, (labels, index), 1)
    return votes


def _accuracy(votes: np.ndarray, classifier: np.ndarray) -> float:
    return float(votes[classifier, np.arange(votes.shape[1])].sum() / votes.sum())


def compute(ctx: EvalContext) -> dict[str, float]:
    """Majority-vote classifier from code dimensions to factors, and its accuracies.

    Args:
        ctx: the evaluation; its shared ``train`` points give the global variances.

    Returns:
        ``train_accuracy`` and ``eval_accuracy`` in [0, 1] (0 with no active dimension) and
        ``num_active_dims``.
    """
    settings = ctx.protocol.factor_vae
    codes = ctx.points("train", settings.num_variance_estimate).codes
    global_var = codes.var(axis=0, ddof=1)
    active = (np.sqrt(global_var) >= settings.prune_threshold) & (global_var > 0)
    num_active = float(len(active) if settings.index_quirk else active.sum())
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0.0}
    rng = ctx.rng("factor_vae")
    train_votes = sample_votes(ctx, settings.num_train, rng, global_var, active)
    classifier = np.argmax(train_votes, axis=0)
    eval_votes = sample_votes(ctx, settings.num_eval, rng, global_var, active)
    return {
        "train_accuracy": _accuracy(train_votes, classifier),
        "eval_accuracy": _accuracy(eval_votes, classifier),
        "num_active_dims": num_active,
    }


SPEC = MetricSpec(
    name="factor_vae",
    keys=("train_accuracy", "eval_accuracy", "num_active_dims"),
    compute=compute,
    points=lambda protocol: {"train": protocol.factor_vae.num_variance_estimate},
)
