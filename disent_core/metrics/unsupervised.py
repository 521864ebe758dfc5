"""Unsupervised scores of the code distribution: Gaussian total correlation, Gaussian Wasserstein
correlation (and its normalised form) and the mean pairwise mutual information of code dimensions.

Source: disentanglement_lib's ``unsupervised_metrics`` (Locatello et al., ICML 2019, Section 5).
With C the sample covariance of the codes (ddof 1):

    gaussian_total_correlation = 1/2 * (sum_j log C_jj - log det C)
    gaussian_wasserstein_correlation = 2 tr(C) - 2 tr( sqrtm( C * diag(C)[:, None] ) )
                                     (the trace of the root via eigenvalues, same value)
    gaussian_wasserstein_correlation_norm = gaussian_wasserstein_correlation / tr(C)
    mutual_info_score = mean over j != l of I(z_j; z_l), codes in 20-bin histograms

Deviations from disentanglement_lib (only where dlib returns NaN or inf on degenerate codes):
constant code dimensions are left out of the total correlation (they are independent of
everything; dlib takes log 0); when every dimension is constant the three Gaussian scores are 0;
with a single code dimension ``mutual_info_score`` is 0 (dlib divides by D^2 - D = 0). Linearly
dependent non-constant dimensions give an infinite total correlation, as they should.
"""

from __future__ import annotations

import numpy as np

from disent_core.metrics.base import EvalContext, MetricSpec
from disent_core.metrics.sampling import discrete_mutual_info, histogram_discretize


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """KL between N(0, cov) and the product of its marginals, over the non-constant dimensions.

    Args:
        cov: (D, D) covariance matrix of the codes.

    Returns:
        Total correlation in nats, >= 0 (0 when every dimension is constant, inf when the
        non-constant ones are linearly dependent).
    """
    active = np.diag(cov) > 0
    if not active.any():
        return 0.0
    cov = cov[np.ix_(active, active)]
    sign, logdet = np.linalg.slogdet(cov)
    if sign <= 0:
        return float("inf")
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """Squared 2-Wasserstein distance between N(0, cov) and the product of its marginals.

    tr sqrtm(diag(C) C) is computed as the sum of the square roots of the eigenvalues of the
    similar symmetric matrix diag(C)^1/2 C diag(C)^1/2 (exact; no warning on singular C).

    Args:
        cov: (D, D) covariance matrix C of the codes.

    Returns:
        2 tr(C) - 2 tr sqrtm(diag(C) C), in squared code units, >= 0 up to rounding.
    """
    root_diag = np.sqrt(np.diag(cov))
    eigenvalues = np.linalg.eigvalsh(root_diag[:, None] * cov * root_diag[None, :])
    return float(2 * np.trace(cov) - 2 * np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def mean_pairwise_mutual_info(codes: np.ndarray, num_bins: int) -> float:
    """Mean discrete MI between distinct code dimensions (0 for a single dimension).

    Args:
        codes: (N, D) float codes; each dimension binned into ``num_bins`` bins.
        num_bins: histogram bins per dimension.

    Returns:
        The mean MI over ordered pairs j != l, in nats, >= 0.
    """
    dims = codes.shape[1]
    if dims < 2:
        return 0.0
    binned = histogram_discretize(codes, num_bins)
    mi = discrete_mutual_info(binned, binned)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (dims * dims - dims))


def compute(ctx: EvalContext) -> dict[str, float]:
    """The four unsupervised scores of the shared ``train`` codes (covariance with ddof 1).

    Args:
        ctx: the evaluation.

    Returns:
        ``gaussian_total_correlation`` (nats), ``gaussian_wasserstein_correlation``,
        ``gaussian_wasserstein_correlation_norm`` (divided by tr C) and ``mutual_info_score`` (nats).
    """
    codes = ctx.points("train", ctx.protocol.unsupervised.num_train).codes
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    trace = float(np.trace(cov))
    wasserstein = gaussian_wasserstein_correlation(cov) if trace > 0 else 0.0
    return {
        "gaussian_total_correlation": gaussian_total_correlation(cov),
        "gaussian_wasserstein_correlation": wasserstein,
        "gaussian_wasserstein_correlation_norm": wasserstein / trace if trace > 0 else 0.0,
        "mutual_info_score": mean_pairwise_mutual_info(codes, ctx.protocol.discretizer.num_bins),
    }


SPEC = MetricSpec(
    name="unsupervised",
    keys=(
        "gaussian_total_correlation",
        "gaussian_wasserstein_correlation",
        "gaussian_wasserstein_correlation_norm",
        "mutual_info_score",
    ),
    compute=compute,
    points=lambda protocol: {"train": protocol.unsupervised.num_train},
    uses_factors=False,
)
