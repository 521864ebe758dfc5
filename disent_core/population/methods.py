"""Which methods train as populations, which of their options may differ, and their fused step.

A ``FusedMethod`` names the sub-modules of a method that are fused across members (``networks``:
attributes of the method, each a ``FusedNetwork``), the method options that may differ between
members (``weights``: options that only weight or schedule the loss), and ``loss``: one training
step's terms of every member, in the method's own order of random draws.

The step runs the heavy networks once for all members, and the pure loss functions the members
share (``reconstruction_loss``, ``gaussian_kl_per_dim``; the same for every member, the
reconstruction kind being equal) once for all with ``vmap``. What is a member's own runs on its
slice with the member's own ``Method`` object: its ``sample`` (its generator), its ``regularizer``
(its schedules and controllers) and the public stages its single-model ``loss`` is built from
(``VAEMethod.vae_terms``, FactorVAE's ``discriminator_batch`` and ``tc_terms``, DeVAE's
``decoder_inputs`` and ``space_terms``, which DeVAE keeps per member). This is the split the design
chose: ``vmap`` cannot draw from a member's own ``torch.Generator``, and a member's schedules and
controllers are Python objects read per step, so those few small operations per member run in a
Python loop (N kernel launches each), while everything that scales with the networks is one launch.

Each member's generator is drawn from in the order its single training draws from it (its sample,
then its permutations or its space), so each member sees the random numbers of its single training;
only the floating-point rounding of the fused operations (a grouped convolution instead of a
convolution, a batched reduction) differs.

Supported: the six methods of Locatello et al. (beta_vae, annealed_vae, factor_vae with its
discriminator fused too, beta_tc_vae, dip_vae_i, dip_vae_ii), devae, and the controlled or staged
beta-VAEs (control_vae, dynamic_vae, cascade_vae_c). Refused: did (adversarial, three networks and
optimisers of its own design) and deft (per-stage learning-rate factors and gradient hooks on
parameter groups, which one optimiser over stacked members cannot give each member).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from disent_core.methods.base import Method, MethodConfig, Posterior, VAEMethod
from disent_core.methods.devae import DeVAE
from disent_core.methods.factor_vae import FactorVAE
from disent_core.methods.losses import gaussian_kl_per_dim, reconstruction_loss
from disent_core.population.fused import FusedNetwork

Terms = dict[str, torch.Tensor]
FusedLoss = Callable[[Mapping[str, FusedNetwork], Sequence[Method], torch.Tensor, int], list[Terms]]


@dataclass(frozen=True)
class FusedMethod:
    """How one method trains as a population.

    The population's optimisers are built from member 0's ``optimizers`` over the stacked parameters
    and take member 0's ``lr_factors``; every method listed here has none (factor 1), so each
    member's learning rate is the single trainer's. A method whose factors could differ between
    members would have to be refused or given one optimiser group per member.

    Attributes:
        networks: the method's sub-modules fused across members, in parameter order.
        weights: method options that may differ between members (they only weight or schedule
            the loss); every other option must be equal.
        loss: ``(networks, members, x, step) -> terms of each member``, ``x`` (N, B, C, H, W).
        structure: ``config -> {description: value}`` of values that must be equal although the
            option holding them may differ (DeVAE's number of spaces).
    """

    networks: tuple[str, ...]
    weights: frozenset[str]
    loss: FusedLoss
    structure: Callable[[MethodConfig], dict[str, Any]] = field(default=lambda config: {})


def _posteriors(
    members: Sequence[VAEMethod], mean: torch.Tensor, logvar: torch.Tensor, step: int
) -> list[Posterior]:
    kl_per_dim = torch.func.vmap(gaussian_kl_per_dim)(mean, logvar)
    return [Posterior(mean[i], logvar[i], m.sample(mean[i], logvar[i]), kl_per_dim[i], step)
            for i, m in enumerate(members)]


def _reconstruction(members: Sequence[Method], logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(reconstruction_loss, in_dims=(0, 0, None))(logits, x, members[0].context.recon)


def _autoencode(
    networks: Mapping[str, FusedNetwork], members: Sequence[VAEMethod], x: torch.Tensor, step: int
) -> tuple[list[Posterior], torch.Tensor, torch.Tensor]:
    """The fused encoder, each member's sample, the fused decoder: (posteriors, stacked z, recon)."""
    mean, logvar = networks["encoder"](x)
    posteriors = _posteriors(members, mean, logvar, step)
    z = torch.stack([p.z for p in posteriors])
    return posteriors, z, _reconstruction(members, networks["decoder"](z), x)


def vae_loss(
    networks: Mapping[str, FusedNetwork], members: Sequence[VAEMethod], x: torch.Tensor, step: int
) -> list[Terms]:
    """``VAEMethod.loss`` of every member: fused encoder and decoder, each member's sample and regularizer.

    Args:
        networks: the fused ``encoder`` and ``decoder``.
        members: the members' methods, in stack order.
        x: each member's batch, (N, B, C, H, W) in [0, 1].
        step: the global step.

    Returns:
        Each member's terms, as its ``loss`` returns them.
    """
    posteriors, _, recon = _autoencode(networks, members, x, step)
    return [m.vae_terms(recon[i], p, m.regularizer(p))
            for i, (m, p) in enumerate(zip(members, posteriors, strict=True))]


def factor_vae_loss(
    networks: Mapping[str, FusedNetwork], members: Sequence[FactorVAE], x: torch.Tensor, step: int
) -> list[Terms]:
    """``FactorVAE.loss`` of every member, the discriminator fused too.

    Args:
        networks: the fused ``encoder``, ``decoder`` and ``discriminator``.
        members: the members' methods, in stack order.
        x: each member's batch, (N, B, C, H, W) in [0, 1].
        step: the global step.

    Returns:
        Each member's terms, as its ``loss`` returns them.
    """
    posteriors, z, recon = _autoencode(networks, members, x, step)
    d_real = networks["discriminator"](z)
    d_batch = networks["discriminator"](
        torch.stack([m.discriminator_batch(p.z) for m, p in zip(members, posteriors, strict=True)])
    )
    return [m.vae_terms(recon[i], p, m.tc_terms(p, d_real[i], d_batch[i]))
            for i, (m, p) in enumerate(zip(members, posteriors, strict=True))]


def devae_loss(
    networks: Mapping[str, FusedNetwork], members: Sequence[DeVAE], x: torch.Tensor, step: int
) -> list[Terms]:
    """``DeVAE.loss`` of every member: fused encoder, hierarchy and decoder.

    Args:
        networks: the fused ``encoder``, ``hierarchy`` and ``decoder``.
        members: the members' methods, in stack order.
        x: each member's batch, (N, B, C, H, W) in [0, 1].
        step: the global step (unused, as in ``DeVAE.loss``).

    Returns:
        Each member's terms, as its ``loss`` returns them.
    """
    means, logvars = networks["hierarchy"](*networks["encoder"](x))
    inputs = [m.decoder_inputs(means[i], logvars[i]) for i, m in enumerate(members)]
    logits = networks["decoder"](torch.stack([z for z, _ in inputs]), torch.stack([s for _, s in inputs]))
    return [m.space_terms(x[i], means[i], logvars[i], logits[i], inputs[i][1]) for i, m in enumerate(members)]


_VAE = ("encoder", "decoder")

FUSED_METHODS: dict[str, FusedMethod] = {
    "beta_vae": FusedMethod(_VAE, frozenset({"beta"}), vae_loss),
    "annealed_vae": FusedMethod(
        _VAE, frozenset({"c_max", "gamma", "iteration_threshold", "capacity"}), vae_loss
    ),
    "factor_vae": FusedMethod((*_VAE, "discriminator"), frozenset({"gamma"}), factor_vae_loss),
    "beta_tc_vae": FusedMethod(_VAE, frozenset({"beta"}), vae_loss),
    "dip_vae_i": FusedMethod(_VAE, frozenset({"lambda_od", "lambda_d"}), vae_loss),
    "dip_vae_ii": FusedMethod(_VAE, frozenset({"lambda_od", "lambda_d"}), vae_loss),
    "devae": FusedMethod(
        ("encoder", "hierarchy", "decoder"),
        frozenset({"betas", "scale"}),
        devae_loss,
        structure=lambda config: {"the number of spaces, len(method.betas)": len(config.betas)},
    ),
    "control_vae": FusedMethod(
        _VAE, frozenset({"c", "init_c", "c_step", "period", "k_p", "k_i", "beta_min"}), vae_loss
    ),
    "dynamic_vae": FusedMethod(
        _VAE,
        frozenset({"c", "total_steps", "period", "alpha", "k_p", "k_i", "beta_init", "beta_min",
                   "proportional_on"}),
        vae_loss,
    ),
    "cascade_vae_c": FusedMethod(_VAE, frozenset({"beta_min", "beta_max", "stage_steps"}), vae_loss),
}
"""Every method that trains as a population, by name."""
