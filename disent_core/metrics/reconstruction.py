"""Held-out reconstruction error, KL and number of active latents of an autoencoder.

Not a disentanglement_lib metric. On ``num_points`` fresh i.i.d. observations x:

    reconstruction_error = mean_x reconstruction_loss(x, mu(x))
    kl = mean_x sum_j KL( N(mu_j(x), sigma_j^2(x)) || N(0, 1) )
    num_active_latents = #{ j : mean_x KL_j > kl_threshold }      (0.01, as dlib's UDR filter)

``reconstruction_loss`` is the model's training reconstruction term (for a disent_core method,
Bernoulli cross-entropy on logits or squared error of sigmoid(logits), summed over pixels). The
decoder is fed the posterior mean, not a sample, so the number is deterministic, and the same
whichever representation kind the other metrics score.
Computed only when the representation is an ``Autoencoder`` (``disent_core.latents``: a posterior
and a reconstruction loss); otherwise the engine skips it with a note.
"""

from __future__ import annotations

import numpy as np
import torch

from disent_core.latents import Autoencoder
from disent_core.methods.losses import gaussian_kl_per_dim
from disent_core.metrics.base import EvalContext, MetricSpec, require


def compute(ctx: EvalContext) -> dict[str, float]:
    """Held-out reconstruction error, KL and active latents of ``ctx.autoencoder``.

    Args:
        ctx: the evaluation; its ``autoencoder`` decodes the posterior means of ``num_points`` fresh
            observations.

    Returns:
        ``reconstruction_error`` (the model's loss per image, nats for Bernoulli), ``kl`` (nats,
        summed over dimensions) and ``num_active_latents``.

    Raises:
        MetricError: the representation is not an ``Autoencoder`` module.
    """
    settings = ctx.protocol.reconstruction
    model = ctx.autoencoder
    require(model is not None and supports(model), f"reconstruction needs {SPEC.requirement}")
    device = next(model.parameters()).device
    rng = ctx.rng("reconstruction")
    factors = ctx.sample_latent(settings.num_points, rng)
    recon_sum, kl_sum, count = 0.0, None, 0
    with torch.inference_mode():
        chunk = ctx.protocol.chunk_size
        chunks = (factors[start : start + chunk] for start in range(0, len(factors), chunk))
        for observations in ctx.observation_chunks(chunks, rng):
            step = ctx.batch_size or len(observations)
            for start in range(0, len(observations), step):
                batch = np.ascontiguousarray(observations[start : start + step], dtype=np.float32)
                x = torch.from_numpy(batch).to(device)
                mean, logvar = model.posterior(x)
                n = len(x)
                recon_sum += float(model.reconstruction_loss(x, mean)) * n
                kl = gaussian_kl_per_dim(mean, logvar).double().cpu().numpy() * n
                kl_sum = kl if kl_sum is None else kl_sum + kl
                count += n
    kl_mean = kl_sum / count
    return {
        "reconstruction_error": recon_sum / count,
        "kl": float(kl_mean.sum()),
        "num_active_latents": float(np.sum(kl_mean > settings.kl_threshold)),
    }


def supports(representation: object) -> bool:
    """True for an ``Autoencoder`` module (a posterior, a reconstruction loss and parameters).

    Args:
        representation: what ``evaluate`` was given.

    Returns:
        Whether the reconstruction metric can score it.
    """
    return isinstance(representation, Autoencoder) and isinstance(representation, torch.nn.Module)


SPEC = MetricSpec(
    name="reconstruction",
    keys=("reconstruction_error", "kl", "num_active_latents"),
    compute=compute,
    uses_factors=False,
    accepts=supports,
    requirement="an autoencoder module with posterior(x) -> (mean, logvar) and "
    "reconstruction_loss(x, z)",
)
