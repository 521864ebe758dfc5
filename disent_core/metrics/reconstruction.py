"""Held-out reconstruction error, KL and number of active latents of a disent_core Method.

Not a disentanglement_lib metric. On ``num_points`` fresh i.i.d. observations x:

    reconstruction_error = mean_x sum_pixels loss(decoder(mu(x)), x)
    kl = mean_x sum_j KL( N(mu_j(x), sigma_j^2(x)) || N(0, 1) )
    num_active_latents = #{ j : mean_x KL_j > kl_threshold }      (0.01, as dlib's UDR filter)

``loss`` is the method's training reconstruction term (``method.context.recon``: Bernoulli
cross-entropy on logits, or squared error of sigmoid(logits)), at the training scale (sum over
pixels). The decoder is fed the posterior mean, not a sample, so the number is deterministic, and
the same whichever representation kind the other metrics score.
Computed only when the representation is a disent_core Method with an ``encoder`` returning
(mean, logvar) and a ``decoder``; otherwise the engine skips it with a note.
"""

from __future__ import annotations

import numpy as np
import torch

from disent_core.methods.base import Method
from disent_core.methods.losses import gaussian_kl_per_dim, reconstruction_loss
from disent_core.metrics.base import EvalContext, MetricSpec, require


def compute(ctx: EvalContext) -> dict[str, float]:
    settings = ctx.protocol.reconstruction
    method = ctx.method
    require(method is not None and supports(method), f"reconstruction needs {SPEC.requirement}")
    device = next(method.parameters()).device
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
                mean, logvar = method.encoder(x)
                logits = method.decoder(mean)
                n = len(x)
                recon_sum += float(reconstruction_loss(logits, x, method.context.recon)) * n
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
    """True for a disent_core Method with the encoder, decoder and reconstruction kind used here."""
    return (
        isinstance(representation, Method)
        and all(hasattr(representation, name) for name in ("encoder", "decoder"))
        and hasattr(representation.context, "recon")
    )


SPEC = MetricSpec(
    name="reconstruction",
    keys=("reconstruction_error", "kl", "num_active_latents"),
    compute=compute,
    uses_factors=False,
    accepts=supports,
    requirement="a disent_core Method with an encoder returning (mean, logvar), a decoder and "
    "context.recon",
)
