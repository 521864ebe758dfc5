"""DEFT (Wu, Wang, Yang, Li, Liu, Zhou, "DEFT: Distilling Entangled Factors by Preventing Information
Diffusion", Machine Learning 111(6), 2022; arXiv 2102.03986).

    loss(t) = R(x) + beta(t) * sum_d KL_d

The latent dimensions are split into consecutive groups of ``group_size``. Training runs in
stages: in stage s the active group a = min(s, G - 1) trains normally, earlier groups are slowed
by gamma or frozen, later groups are switched off; beta(t) is piecewise constant and lowered stage
by stage (beta_s = betas[stage]), so that only factors whose information freezing point
(``disent_core.analysis.annealing``) lies above beta_s can enter the code in stage s. ``variant``
picks one of the authors' four code generations (erow/disentanglement_lib):

- ``A`` (2021): one shared encoder; per-dimension gradient scales gamma / 1 / 0 on mean and logvar;
- ``B`` (Sep 2021, the default): one sub-encoder per group; earlier ones' gradients times gamma;
- ``C`` (Aug 2022): as B, earlier sub-encoders frozen behind a learnable projection
  mean * exp(W1), logvar + W2;
- ``D`` (May 2022): C's encoder; beta(t) = max(beta_max * exp(-beta_decay * t / anneal_steps),
  beta_min), and the stage advances at the first step with beta(t) <= betas[stage].

Deviations (options; the defaults follow the authors):
- ``gamma_mode: lr`` (B only): learning rate gamma * lr for earlier sub-encoders instead of scaled
  gradients, which Adam mostly normalises away;
- ``gamma`` as a list (one factor per group) and ``stage_steps`` as a list of stage lengths;
- with more stages than groups the active group stays the last one.

docs/methods.md ("DEFT") gives each variant, the stage rule, the defaults and what is confirmed or
inferred; docs/provenance.md ("DEFT") the commits and files.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from disent_core.errors import ConfigError
from disent_core.methods.base import MethodConfig, MethodContext, OptimConfig, Posterior, VAEMethod
from disent_core.methods.losses import scale_gradient
from disent_core.models.conv64 import Architecture, ConvEncoder
from disent_core.schedules import ExponentialConfig, Schedule, StagesConfig

Variant = Literal["A", "B", "C", "D"]
PositiveFloat = Annotated[float, Field(gt=0)]
DEFAULT_BETAS: dict[str, list[float]] = {
    "A": [70.0, 30.0, 12.0, 1.0],
    "B": [70.0, 30.0, 12.0, 1.0],
    "C": [70.0, 30.0, 12.0, 1.0],
    "D": [70.0, 30.0, 15.0, 1.0],
}


class DEFTConfig(MethodConfig):
    """The options of ``deft``; each field's ``description`` says what it sets.

    ``betas`` defaults per variant (``DEFAULT_BETAS``).

    Raises:
        pydantic.ValidationError: ``gamma_mode: lr`` outside variant B; variant D's thresholds not
            strictly descending below ``beta_max``; a ``stage_steps`` list whose length is not
            len(betas) - 1.
    """

    name: Literal["deft"] = "deft"
    variant: Variant = Field("B", description="code generation A, B, C or D (module docstring)")
    betas: list[PositiveFloat] = Field(
        min_length=1,
        description="A/B/C: beta of each stage; D: descending beta thresholds that advance the stage "
        "(default per variant: [70, 30, 12, 1], D: [70, 30, 15, 1])",
    )
    stage_steps: Annotated[int, Field(gt=0)] | list[Annotated[int, Field(gt=0)]] = Field(
        15_000, description="A/B/C: length of every stage but the last, or a list of len(betas) - 1 lengths"
    )
    group_size: int = Field(2, ge=1, description="latent dimensions per group (the last may be smaller)")
    gamma: Annotated[float, Field(ge=0)] | list[Annotated[float, Field(ge=0)]] = Field(
        0.1,
        description="A/B: factor that slows earlier groups (see gamma_mode); a list gives one "
        "factor per group; C/D freeze earlier groups instead",
    )
    gamma_mode: Literal["grad_scale", "lr"] = Field(
        "grad_scale",
        description="B: grad_scale multiplies earlier sub-encoders' gradients by gamma before the "
        "Adam step (the authors' code), lr gives them learning rate gamma * lr instead; A (gradient "
        "hooks) and C/D (frozen) accept only grad_scale",
    )
    sub_encoder_channels: int = Field(8, ge=1, description="B/C/D: base channels of each sub-encoder")
    beta_max: float = Field(150.0, gt=0, description="D: beta at step 0")
    beta_decay: float = Field(20.0, gt=0, description="D: beta(t) = beta_max * exp(-beta_decay * t / T)")
    anneal_steps: int = Field(200_000, gt=0, description="D: T, the decay's time scale in steps")
    beta_min: float = Field(1.0, gt=0, description="D: floor of beta(t)")

    @model_validator(mode="before")
    @classmethod
    def _variant_betas(cls, data: Any) -> Any:
        if isinstance(data, dict) and "betas" not in data:
            variant = data.get("variant", "B")
            data = {**data, "betas": DEFAULT_BETAS.get(variant, DEFAULT_BETAS["B"])}
        return data

    @model_validator(mode="after")
    def _check(self) -> DEFTConfig:
        if self.gamma_mode == "lr" and self.variant != "B":
            raise ValueError(
                f"gamma_mode 'lr' applies to variant B only; variant {self.variant} "
                + ("scales gradients by construction" if self.variant == "A" else "freezes earlier groups")
                + ", use gamma_mode 'grad_scale'"
            )
        if self.variant == "D":
            if any(b >= a for a, b in zip([self.beta_max, *self.betas], self.betas, strict=False)):
                raise ValueError(
                    f"variant D needs thresholds below beta_max and strictly descending, got "
                    f"beta_max={self.beta_max}, betas={self.betas}"
                )
        elif isinstance(self.stage_steps, list) and len(self.stage_steps) != len(self.betas) - 1:
            raise ValueError(
                f"stage_steps lists the lengths of all stages but the last: {len(self.betas)} betas "
                f"need {len(self.betas) - 1} lengths, got {len(self.stage_steps)}"
            )
        return self

    def boundaries(self) -> list[int]:
        """A/B/C: where the stages begin.

        Returns:
            The steps at which stages 1 .. S-1 begin (S = len(betas)), ascending.
        """
        lengths = self.stage_steps
        if isinstance(lengths, int):
            lengths = [lengths] * (len(self.betas) - 1)
        out, total = [], 0
        for length in lengths:
            total += length
            out.append(total)
        return out


def first_step_at_or_below(schedule: Schedule, threshold: float, start: int = 0) -> int | None:
    """Search a non-increasing schedule for the step at which it reaches ``threshold``.

    Args:
        schedule: a non-increasing schedule of the step.
        threshold: the value to reach.
        start: the first step considered.

    Returns:
        The first step >= ``start`` at which the schedule is <= ``threshold``, or None when the
        search passes step 2**62 without reaching it.
    """
    if schedule(start) <= threshold:
        return start
    low, high = start, start + 1
    while schedule(high) > threshold:
        low, high = high, start + 2 * (high - start)
        if high > 2**62:
            return None
    while high - low > 1:  # schedule(low) > threshold >= schedule(high)
        mid = (low + high) // 2
        low, high = (mid, high) if schedule(mid) > threshold else (low, mid)
    return high


def threshold_boundaries(beta: Schedule, thresholds: list[float]) -> list[int]:
    """Variant D's stage boundaries: the stage advances at the first step with beta(t) <= the
    current threshold, at most one stage per step; thresholds never reached end the list.

    Args:
        beta: the decaying beta(t); its ``last_value`` is reset after the search.
        thresholds: descending thresholds, one per stage switch.

    Returns:
        The steps at which stages 1, 2, ... begin, ascending.
    """
    out: list[int] = []
    for threshold in thresholds:
        start = out[-1] + 1 if out else 0
        step = first_step_at_or_below(beta, threshold, start)
        if step is None:
            break
        out.append(step)
    beta.last_value = None  # the search is not a training step
    return out


def group_slices(latent_dim: int, group_size: int) -> list[slice]:
    """Split the latent dimensions into DEFT's groups.

    Args:
        latent_dim: d.
        group_size: dimensions per group.

    Returns:
        Consecutive slices of ``group_size`` dimensions covering 0 .. d; the last may be smaller.
    """
    return [slice(i, min(i + group_size, latent_dim)) for i in range(0, latent_dim, group_size)]


def scale_group_gradients(
    optimizer: torch.optim.Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Optimiser step pre-hook: multiply the gradients of each parameter group by its ``grad_factor``.

    Args:
        optimizer: the optimiser about to step; groups without ``grad_factor`` are left alone.
        args: positional arguments of ``step`` (unused).
        kwargs: keyword arguments of ``step`` (unused).

    Returns:
        None, so that ``step`` runs with its arguments unchanged.
    """
    for group in optimizer.param_groups:
        factor = group.get("grad_factor", 1.0)
        if factor == 1.0:
            continue
        for param in group["params"]:
            if param.grad is not None:
                param.grad.mul_(factor)


class SharedEncoder(nn.Module):
    """Variant A: one conv encoder whose per-dimension gradient is scaled by ``grad_scale``.

    Args:
        in_channels: channels of the observations.
        latent_dim: d.
        base_channels: base width of the conv encoder.
        architecture: which conv pair (``dlib`` or ``erow``).
    """

    def __init__(
        self, in_channels: int, latent_dim: int, base_channels: int, architecture: Architecture = "dlib"
    ) -> None:
        super().__init__()
        self.body = ConvEncoder(in_channels, latent_dim, base_channels, architecture)
        self.register_buffer("grad_scale", torch.ones(latent_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode; the backward pass scales each dimension's gradient by ``grad_scale``.

        Args:
            x: observations, (N, C, H, W) in [0, 1].

        Returns:
            (mean, logvar), each (N, d).
        """
        mean, logvar = self.body(x)
        return scale_gradient(mean, self.grad_scale), scale_gradient(logvar, self.grad_scale)


class GroupedEncoder(nn.Module):
    """Variants B/C/D: one conv sub-encoder per group, switched by ``active`` (a buffer).

    Groups after the active one output mean = logvar = 0. With ``freeze_earlier`` (C/D) earlier
    groups run without gradient and pass through the projection mean * exp(W1), logvar + W2.

    Args:
        in_channels: channels of the observations.
        slices: the latent dimensions of each group (``group_slices``).
        base_channels: base width of each sub-encoder.
        freeze_earlier: C/D: freeze earlier groups behind the projection.
        architecture: which conv pair (``dlib`` or ``erow``).
    """

    def __init__(
        self,
        in_channels: int,
        slices: list[slice],
        base_channels: int,
        freeze_earlier: bool,
        architecture: Architecture = "dlib",
    ) -> None:
        super().__init__()
        self.slices = slices
        latent_dim = slices[-1].stop
        self.encoders = nn.ModuleList(
            ConvEncoder(in_channels, s.stop - s.start, base_channels, architecture) for s in slices
        )
        self.freeze_earlier = freeze_earlier
        if freeze_earlier:
            self.projection_log_scale = nn.Parameter(torch.zeros(latent_dim))
            self.projection_shift = nn.Parameter(torch.zeros(latent_dim))
        self.register_buffer("active", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode with the sub-encoders up to the active group.

        Args:
            x: observations, (N, C, H, W) in [0, 1].

        Returns:
            (mean, logvar), each (N, d); zero for the groups after the active one.
        """
        active = int(self.active)
        means, logvars = [], []
        for i, (encoder, dims) in enumerate(zip(self.encoders, self.slices, strict=True)):
            if i > active:
                zeros = x.new_zeros((x.shape[0], dims.stop - dims.start))
                mean, logvar = zeros, zeros
            elif i < active and self.freeze_earlier:
                with torch.no_grad():
                    mean, logvar = encoder(x)
                mean = mean * self.projection_log_scale[dims].exp()
                logvar = logvar + self.projection_shift[dims]
            else:
                mean, logvar = encoder(x)
            means.append(mean)
            logvars.append(logvar)
        return torch.cat(means, dim=1), torch.cat(logvars, dim=1)


class DEFT(VAEMethod):
    """DEFT: a VAE whose encoder, beta and stage follow the variant (module docstring).

    Args:
        config: the method's options.
        context: the data's shape, the latent dimensions, the reconstruction loss and the generator.

    Raises:
        ConfigError: a ``gamma`` list whose length is not the number of groups.
    """

    name = "deft"
    config_class = DEFTConfig
    config: DEFTConfig
    schedule_names = ("beta", "stage")

    def __init__(self, config: DEFTConfig, context: MethodContext) -> None:
        slices = group_slices(context.latent_dim, config.group_size)
        groups = len(slices)
        if isinstance(config.gamma, list) and len(config.gamma) != groups:
            raise ConfigError(
                f"method.gamma lists one factor per group: {context.latent_dim} latents in groups of "
                f"{config.group_size} make {groups} groups, got {len(config.gamma)} factors"
            )
        super().__init__(config, context)  # build_encoder below, then the dlib decoder
        self.slices = slices
        self.gammas = config.gamma if isinstance(config.gamma, list) else [config.gamma] * groups
        if config.variant == "D":
            rate = math.exp(-config.beta_decay)
            self.beta = ExponentialConfig(
                start=config.beta_max, rate=rate, every=config.anneal_steps, end=config.beta_min
            ).build()
            boundaries = threshold_boundaries(self.beta, config.betas)
        else:
            boundaries = config.boundaries()
            self.beta = StagesConfig(values=config.betas, boundaries=boundaries).build()
        stages = [float(s) for s in range(len(boundaries) + 1)]
        self.stage = StagesConfig(values=stages, boundaries=boundaries).build()
        self._adam: torch.optim.Adam | None = None
        self._set_active(0)

    def build_encoder(self, context: MethodContext) -> nn.Module:
        """The variant's encoder.

        Args:
            context: the data's shape, the latent dimensions, base channels and architecture.

        Returns:
            A: one ``SharedEncoder``; B/C/D: a ``GroupedEncoder`` (C/D freeze earlier groups).
        """
        channels, config = context.observation_shape[0], self.config
        if config.variant == "A":
            return SharedEncoder(channels, context.latent_dim, context.base_channels, context.architecture)
        slices = group_slices(context.latent_dim, config.group_size)
        freeze = config.variant in ("C", "D")
        return GroupedEncoder(channels, slices, config.sub_encoder_channels, freeze, context.architecture)

    # --- stages ------------------------------------------------------------------------------
    def active_group(self, step: int) -> int:
        """The group trained at the full rate.

        Args:
            step: the global step.

        Returns:
            Its index: the stage, capped at the last group.
        """
        return min(int(self.stage(step)), len(self.slices) - 1)

    def lr_factor(self, group: int, active: int) -> float:
        """Learning-rate factor of a sub-encoder (B/C/D).

        Args:
            group: index of the sub-encoder.
            active: index of the active group.

        Returns:
            1 for the active group and for B's earlier groups under ``grad_scale``, gamma for B's
            earlier groups under ``lr``, 0 for later groups and C/D's frozen earlier groups.
        """
        if group > active:
            return 0.0
        if group == active:
            return 1.0
        if self.config.variant != "B":
            return 0.0
        return self.gammas[group] if self.config.gamma_mode == "lr" else 1.0

    def grad_factor(self, group: int, active: int) -> float:
        """Factor applied to a sub-encoder's gradients before the Adam step (B/C/D).

        Args:
            group: index of the sub-encoder.
            active: index of the active group.

        Returns:
            gamma for B's earlier groups under ``grad_scale``, else 1.
        """
        if group < active and self.config.variant == "B" and self.config.gamma_mode == "grad_scale":
            return self.gammas[group]
        return 1.0

    def _set_active(self, active: int) -> None:
        if isinstance(self.encoder, SharedEncoder):
            scale = torch.zeros(self.context.latent_dim)
            for i, dims in enumerate(self.slices[: active + 1]):
                scale[dims] = 1.0 if i == active else self.gammas[i]
            self.encoder.grad_scale.copy_(scale)
            return
        self.encoder.active.fill_(active)
        if self._adam is None:
            return
        for group in self._adam.param_groups[1:]:
            group["grad_factor"] = self.grad_factor(group["deft_group"], active)

    def lr_factors(self, step: int) -> dict[str, list[float]]:
        """The learning-rate factor of each parameter group of the Adam.

        Args:
            step: the global step.

        Returns:
            B/C/D: ``{"loss": [1 for the head (decoder and projection), then ``lr_factor`` of each
            sub-encoder]}``; A: ``{}`` (all 1).
        """
        if isinstance(self.encoder, SharedEncoder):
            return {}
        active = self.active_group(step)
        return {"loss": [1.0, *(self.lr_factor(i, active) for i in range(len(self.slices)))]}

    def schedules(self) -> dict[str, Schedule]:
        """The values the trainer reports and checkpoints.

        Returns:
            ``{"beta": beta(t), "stage": stage(t)}``.
        """
        return {"beta": self.beta, "stage": self.stage}

    # --- training ----------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Switch to the stage of ``step``, then the VAE loss of one batch.

        Args:
            x: observations, (N, C, H, W) in [0, 1].
            step: the global step.

        Returns:
            The VAE terms (``VAEMethod.loss``).
        """
        self._set_active(self.active_group(step))
        return super().loss(x, step)

    def regularizer(self, posterior: Posterior) -> dict[str, torch.Tensor]:
        """beta(t) times the total KL.

        Args:
            posterior: the batch's posterior and the global step.

        Returns:
            ``{"regularizer": beta(t) * KL}``.
        """
        return {"regularizer": self.beta(posterior.step) * posterior.kl}

    def optimizers(self, optim: OptimConfig) -> list[tuple[str, torch.optim.Optimizer]]:
        """One Adam over all parameters.

        B/C/D put each sub-encoder in its own parameter group (``deft_group`` = i) whose learning
        rate factor (``lr_factors``, applied by the trainer to ``base_lr`` = ``optim.lr``) and
        ``grad_factor`` (set by ``loss``) follow the stage; with B's ``grad_scale`` a step pre-hook
        (``scale_group_gradients``) applies the ``grad_factor``s between backward and the update.

        Args:
            optim: Adam settings; ``optim.lr`` is the full learning rate.

        Returns:
            ``[("loss", adam)]``.
        """
        head = [*self.decoder.parameters()]
        groups: list[dict[str, Any]] = []
        if isinstance(self.encoder, SharedEncoder):
            head += [*self.encoder.parameters()]
        else:
            if self.encoder.freeze_earlier:
                head += [self.encoder.projection_log_scale, self.encoder.projection_shift]
            active = int(self.encoder.active)
            for i, encoder in enumerate(self.encoder.encoders):
                lr = optim.lr * self.lr_factor(i, active)
                factor = self.grad_factor(i, active)
                params = [*encoder.parameters()]
                groups.append(
                    {"params": params, "lr": lr, "base_lr": optim.lr, "grad_factor": factor, "deft_group": i}
                )
        groups.insert(
            0, {"params": head, "lr": optim.lr, "base_lr": optim.lr, "grad_factor": 1.0, "deft_group": -1}
        )
        self._adam = torch.optim.Adam(groups, lr=optim.lr, betas=optim.betas, eps=optim.eps)
        if self.config.variant == "B" and self.config.gamma_mode == "grad_scale":
            self._adam.register_step_pre_hook(scale_group_gradients)
        return [("loss", self._adam)]
