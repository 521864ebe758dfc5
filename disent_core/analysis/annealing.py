"""DEFT's annealing test and the information freezing point (IFP) (Wu, Wang, Yang, Li, Liu, Zhou,
"DEFT: Distilling Entangled Factors by Preventing Information Diffusion", Machine Learning 111(6),
2022; the authors' code, github.com/erow/disentanglement_lib).

For each ground-truth factor k a VAE is trained on one-factor data (factor k sweeps its values,
the others stay at a reference vector f* drawn per seed) while beta decays (``linear``: the
authors' 2021 schedule; ``exponential``: their 2022 one); the IFP is the largest beta at which the
KL has left zero, i.e. at which the VAE starts to store information about k:

    loss(t) = R(x) + beta(t) * sum_d KL_d
    IFP     = beta(t*),  t* = min{ t > t0 : KL~_t > epsilon },  t0 = min{ t : KL~_t <= epsilon }

with epsilon = 0.1 nat, the authors' threshold. Deviations (ours, each a parameter):
- KL~ is the total KL smoothed by a running median over the steps centred on t whose betas lie
  within a factor e^w of beta(t) (``window`` w = 0.05; 0 reads the raw KL), and log IFP is
  interpolated linearly between steps t* - 1 and t*;
- a run whose smoothed KL never gets to epsilon, or never rises above it again, has no IFP (NaN);
- the exponential preset's Adam lr 1e-4;
- ``propose_beta_pieces`` puts one DEFT beta in each gap between IFP clusters (the sources give no rule).

docs/methods.md ("The annealing test and information freezing points") gives the readout's
formulas and why it reads so, the presets and what is confirmed or inferred; docs/provenance.md
("Annealing test and IFP") the sources.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import randint
from disent_core.errors import ConfigError, Diverged
from disent_core.methods.base import MethodContext, OptimConfig
from disent_core.methods.beta_vae import BetaVAE, BetaVAEConfig
from disent_core.methods.losses import ReconLoss

AnnealSchedule = Literal["linear", "exponential"]


class AnnealingConfig(BaseModel):
    """Settings of one annealing run; ``preset`` gives the authors' settings per schedule.

    Each field's ``description`` says what it sets; the defaults are the 2022 ``exponential``
    preset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    schedule: AnnealSchedule = "exponential"
    steps: int = Field(8000, ge=1, description="run length; also T (linear) and S (exponential)")
    beta_start: float = Field(70.0, gt=0, description="beta_h (linear) or beta_max (exponential)")
    beta_end: float = Field(1.0, ge=0, description="floor (linear) or offset (exponential)")
    gamma: float = Field(15.0, gt=0, description="exponential decay rate per run length")
    latent_dim: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-4, gt=0)
    recon: ReconLoss = "bernoulli"
    base_channels: int = Field(32, ge=1)
    early_stop_recon: float | None = Field(1.0, description="stop once the batch recon is below this")
    epsilon: float = Field(0.1, gt=0, description="KL threshold (nats) of the IFP readout")
    window: float = Field(0.05, ge=0, description="half-width in log beta of the readout's running median")

    @classmethod
    def preset(cls, schedule: AnnealSchedule, **overrides: object) -> AnnealingConfig:
        """The authors' settings of one schedule.

        Args:
            schedule: 2021 ``linear`` or 2022 ``exponential``.
            **overrides: fields that replace the preset's.

        Returns:
            The preset with ``overrides`` applied.

        Raises:
            ConfigError: an unknown schedule.
        """
        if schedule == "linear":
            base: dict[str, object] = {
                "schedule": "linear", "steps": 70_000, "beta_start": 80.0, "latent_dim": 10,
                "batch_size": 256, "lr": 5e-4, "early_stop_recon": None,
            }
        elif schedule == "exponential":
            base = {"schedule": "exponential"}
        else:
            raise ConfigError(f"unknown annealing schedule {schedule!r}; use 'linear' or 'exponential'")
        return cls(**{**base, **overrides})

    def beta(self, step: int | np.ndarray) -> float | np.ndarray:
        """beta(t) of the configured schedule.

        Args:
            step: t, one step or an array of steps.

        Returns:
            beta(t): a float for one step, else an array of the steps' shape.
        """
        t = np.asarray(step, dtype=np.float64)
        if self.schedule == "linear":
            value = np.maximum((1.0 - t / self.steps) * self.beta_start, self.beta_end)
        else:
            value = self.beta_start * np.exp(-self.gamma * t / self.steps) + self.beta_end
        return float(value) if value.ndim == 0 else value


# --- the readout -----------------------------------------------------------------------------------
MIN_HALF_WINDOW = 3
"""Fewest steps on each side of the readout's running median: a bump of up to this many
consecutive batches above epsilon is ignored."""
MAX_HALF_WINDOW = 100
"""Most steps on each side of the readout's running median (bounds its cost on long runs)."""


def smooth_over_beta(betas: np.ndarray, values: np.ndarray, window: float = 0.05) -> np.ndarray:
    """Running median of ``values`` over the steps centred on t whose betas lie within a factor
    e^window of beta_t, at least ``MIN_HALF_WINDOW`` and at most ``MAX_HALF_WINDOW`` steps on each
    side, cut to the first / last steps at the ends (docs/methods.md, "The annealing test and
    information freezing points"); ``window`` 0 returns the values unchanged.

    Args:
        betas: (T,) beta of each step, positive and non-increasing.
        values: (T,) one value per step, e.g. the total KL.
        window: half-width w of the window in log beta.

    Returns:
        (T,) the smoothed values.

    Raises:
        ValueError: betas and values not of one shape (T,), a negative window, or betas not
            positive and non-increasing.
    """
    betas, values = np.asarray(betas, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if betas.shape != values.shape or values.ndim != 1:
        raise ValueError(f"expected betas and values of one shape (T,), got {betas.shape}, {values.shape}")
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    if np.any(betas <= 0) or np.any(np.diff(betas) > 0):
        raise ValueError("betas must be positive and non-increasing")
    n = values.size
    if window == 0 or n == 0:
        return values.copy()
    log_inverse = -np.log(betas)
    steps = np.arange(n)
    left = steps - np.searchsorted(log_inverse, log_inverse - window, side="left")
    right = np.searchsorted(log_inverse, log_inverse + window, side="right") - 1 - steps
    half = np.clip(np.minimum(left, right), MIN_HALF_WINDOW, MAX_HALF_WINDOW)
    shortest = min(2 * MIN_HALF_WINDOW + 1, n)
    start = np.clip(steps - half, 0, n - shortest)
    length = np.clip(steps + half + 1, shortest, n) - start
    out = np.empty(n)
    for size in np.unique(length):
        rows = np.flatnonzero(length == size)
        out[rows] = np.median(sliding_window_view(values, size)[start[rows]], axis=1)
    return out


def _total_kl(kl_per_dim: np.ndarray) -> np.ndarray:
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    if kl.ndim == 2:
        return kl.sum(axis=1)
    if kl.ndim == 1:
        return kl
    raise ValueError(f"expected KL of shape (T,) or (T, d), got {kl.shape}")


def _crossing(kl: np.ndarray, epsilon: float) -> int | None:
    low = np.flatnonzero(kl <= epsilon)
    if low.size == 0:
        return None
    high = np.flatnonzero(kl[low[0]:] > epsilon)
    return int(low[0] + high[0]) if high.size else None


def _smoothed_total(
    betas: np.ndarray, kl_per_dim: np.ndarray, window: float
) -> tuple[np.ndarray, np.ndarray]:
    betas, kl = np.asarray(betas, dtype=np.float64), _total_kl(kl_per_dim)
    if len(betas) != len(kl):
        raise ValueError(f"{len(betas)} betas but {len(kl)} KL records")
    return betas, smooth_over_beta(betas, kl, window)


def freezing_index(
    betas: np.ndarray, kl_per_dim: np.ndarray, epsilon: float = 0.1, window: float = 0.05
) -> int | None:
    """Index t* of the first step after the smoothed total KL was <= epsilon at which it is > epsilon.

    Args:
        betas: (T,) beta of each step, positive and non-increasing.
        kl_per_dim: (T,) or (T, d) KL of each step (summed over d).
        epsilon: KL threshold in nats.
        window: half-width in log beta of the running median (``smooth_over_beta``).

    Returns:
        t*, or None when the smoothed KL never reaches epsilon or never exceeds it afterwards.

    Raises:
        ValueError: betas and KL of different lengths or shapes (``smooth_over_beta``).
    """
    _, kl = _smoothed_total(betas, kl_per_dim, window)
    return _crossing(kl, epsilon)


def ifp_from_curve(
    betas: np.ndarray, kl_per_dim: np.ndarray, epsilon: float = 0.1, window: float = 0.05
) -> float:
    """The information freezing point of one run: the beta at which the smoothed total KL crosses
    epsilon at ``freezing_index``, interpolated linearly in log beta between steps t* - 1 and t*.

    Args:
        betas: (T,) beta of each step, positive and non-increasing.
        kl_per_dim: (T,) or (T, d) KL of each step (summed over d).
        epsilon: KL threshold in nats.
        window: half-width in log beta of the running median (``smooth_over_beta``).

    Returns:
        The IFP, or NaN when the run has none.

    Raises:
        ValueError: betas and KL of different lengths or shapes (``smooth_over_beta``).
    """
    betas, kl = _smoothed_total(betas, kl_per_dim, window)
    index = _crossing(kl, epsilon)
    if index is None:
        return math.nan
    pair = slice(index - 1, index + 1)
    return float(np.exp(np.interp(epsilon, kl[pair], np.log(betas[pair]))))


# --- one-factor data ----------------------------------------------------------------------------------
class OneFactorData:
    """Batches of the n_k images in which latent factor ``factor`` sweeps and the others stay at
    ``reference``; drawn uniformly with replacement. Deterministic datasets are rendered once.

    Args:
        dataset: the ground-truth dataset.
        factor: index of the swept latent factor.
        reference: f*, one value index per factor (the swept factor's is ignored).
        rng: draws the batches (and any nuisance factors).
        device: where the images live.

    Raises:
        ConfigError: a factor index out of range.
    """

    def __init__(
        self,
        dataset: GroundTruthDataset,
        factor: int,
        reference: Sequence[int],
        rng: np.random.Generator,
        device: torch.device | str = "cpu",
    ) -> None:
        space = dataset.factor_space
        if not 0 <= factor < len(space.latent_indices):
            raise ConfigError(f"factor index {factor} out of range for {dataset.factor_names}")
        self.dataset, self.rng, self.device = dataset, rng, torch.device(device)
        self.factors = space.traversal(factor, reference)
        deterministic = dataset.transform is None and all(space.sizes[i] == 1 for i in space.nuisance_indices)
        self.images = self._render(self.factors) if deterministic else None

    def _render(self, factors: np.ndarray) -> torch.Tensor:
        images = self.dataset.sample_observations_from_factors(factors, self.rng)
        return torch.from_numpy(np.ascontiguousarray(images)).to(self.device)

    def __len__(self) -> int:
        return len(self.factors)

    def batch(self, n: int) -> torch.Tensor:
        """Draw a batch uniformly with replacement from the n_k images.

        Args:
            n: batch size.

        Returns:
            ``n`` float images (n, C, H, W) in [0, 1].
        """
        index = self.rng.integers(0, len(self.factors), size=n)
        if self.images is not None:
            return self.images[torch.from_numpy(index).to(self.device)]
        return self._render(self.factors[index])


# --- runs ----------------------------------------------------------------------------------------------
@dataclass
class AnnealingRun:
    """One annealing run: factor ``factor`` with reference f* drawn from ``seed``.

    Attributes:
        factor: index of the swept latent factor.
        factor_name: its name.
        seed: the run's seed.
        reference: the first factor vector of the one-factor data (f* with factor k at its first value).
        betas: (T,) beta of each step run.
        kl_per_dim: (T, d) KL of each step and dimension.
        recon: (T,) reconstruction loss of each step's batch.
        ifp: the IFP, NaN when the run has none.
        stopped_early: whether the reconstruction fell below ``early_stop_recon``.
    """

    factor: int
    factor_name: str
    seed: int
    reference: np.ndarray
    betas: np.ndarray
    kl_per_dim: np.ndarray
    recon: np.ndarray
    ifp: float
    stopped_early: bool


def reference_vector(dataset: GroundTruthDataset, seed: int) -> np.ndarray:
    """f* of ``seed``: one uniform latent factor vector (the same for every factor of a seed).

    Args:
        dataset: the ground-truth dataset.
        seed: the run's seed.

    Returns:
        (num_factors,) value indices.
    """
    rng = np.random.default_rng(seed)
    return randint(rng, np.asarray(dataset.factors_num_values), (dataset.num_factors,))


def run_annealing(
    dataset: GroundTruthDataset,
    factor: int,
    seed: int,
    config: AnnealingConfig | None = None,
    device: torch.device | str = "cpu",
) -> AnnealingRun:
    """Train a VAE on factor ``factor``'s one-factor data while beta decays; read out the IFP.

    Args:
        dataset: the ground-truth dataset.
        factor: index of the swept latent factor.
        seed: draws f*, the initial weights, the batches and the posterior samples.
        config: the run's settings (default ``AnnealingConfig()``, the 2022 preset).
        device: where the model trains.

    Returns:
        The run's per-step record and its IFP.

    Raises:
        ConfigError: a factor index out of range.
        Diverged: the loss became non-finite.
    """
    config = config or AnnealingConfig()
    device = torch.device(device)
    data = OneFactorData(
        dataset, factor, reference_vector(dataset, seed), np.random.default_rng([seed, factor]), device
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    context = MethodContext(
        observation_shape=dataset.observation_shape,
        latent_dim=config.latent_dim,
        recon=config.recon,
        dataset_size=len(data),
        generator=generator,
        base_channels=config.base_channels,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BetaVAE(BetaVAEConfig(beta=0.0), context)  # beta(t) is applied below
    model.to(device).train()
    ((_, adam),) = model.optimizers(OptimConfig(lr=config.lr))
    betas = config.beta(np.arange(config.steps))
    kl = torch.zeros(config.steps, config.latent_dim, device=device)
    recon = torch.zeros(config.steps, device=device)
    steps, stopped = config.steps, False
    for t in range(config.steps):
        terms = model.loss(data.batch(config.batch_size), t)
        loss = terms["loss"] + float(betas[t]) * terms["kl"]
        value = float(loss.detach())
        if not math.isfinite(value):
            raise Diverged(t, "loss", value)
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
        kl[t] = terms["kl_per_dim"].detach()
        recon[t] = terms["recon"].detach()
        if config.early_stop_recon is not None and float(recon[t]) < config.early_stop_recon:
            steps, stopped = t + 1, True
            break
    kl_np, recon_np = kl[:steps].cpu().numpy(), recon[:steps].cpu().numpy()
    return AnnealingRun(
        factor=factor,
        factor_name=dataset.factor_names[factor],
        seed=seed,
        reference=data.factors[0].copy(),
        betas=betas[:steps],
        kl_per_dim=kl_np,
        recon=recon_np,
        ifp=ifp_from_curve(betas[:steps], kl_np, config.epsilon, config.window),
        stopped_early=stopped,
    )


@dataclass
class AnnealingResult:
    """Every run of an annealing test, and the IFP distribution per factor.

    Attributes:
        config: the settings every run used.
        runs: the runs, in the order they ran.
    """

    config: AnnealingConfig
    runs: list[AnnealingRun] = field(default_factory=list)

    def ifps(self) -> dict[str, np.ndarray]:
        """The IFP distribution of each factor.

        Returns:
            Factor name -> IFPs over seeds (NaN where a run had none), in run order.
        """
        out: dict[str, list[float]] = {}
        for run in self.runs:
            out.setdefault(run.factor_name, []).append(run.ifp)
        return {name: np.asarray(values) for name, values in out.items()}

    def table(self) -> list[dict[str, float | int | str]]:
        """The per-factor IFP table.

        Returns:
            One row per factor: ``factor``, ``runs``, ``frozen`` (runs with an IFP), and the
            ``mean``, ``std``, ``min``, ``median``, ``max`` of its IFPs (NaN without any).
        """
        rows = []
        for name, values in self.ifps().items():
            finite = values[np.isfinite(values)]
            stats = (
                {"mean": finite.mean(), "std": finite.std(), "min": finite.min(),
                 "median": float(np.median(finite)), "max": finite.max()}
                if finite.size else dict.fromkeys(("mean", "std", "min", "median", "max"), math.nan)
            )
            rows.append({"factor": name, "runs": len(values), "frozen": int(finite.size),
                         **{k: float(v) for k, v in stats.items()}})
        return rows


def annealing_test(
    dataset: GroundTruthDataset,
    seeds: Iterable[int],
    config: AnnealingConfig | None = None,
    factors: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    on_run: Callable[[AnnealingRun], None] | None = None,
) -> AnnealingResult:
    """Run the annealing test for every factor (or ``factors``) and seed.

    Args:
        dataset: the ground-truth dataset.
        seeds: one run per seed and factor.
        config: the runs' settings (default ``AnnealingConfig()``, the 2022 preset).
        factors: indices of the factors to test (default: all latent factors).
        device: where the models train.
        on_run: called with each run as it finishes.

    Returns:
        Every run, factor by factor.

    Raises:
        ConfigError: a factor index out of range.
        Diverged: a run's loss became non-finite.
    """
    config = config or AnnealingConfig()
    factors = range(dataset.num_factors) if factors is None else factors
    result = AnnealingResult(config)
    seeds = list(seeds)
    for factor in factors:
        for seed in seeds:
            run = run_annealing(dataset, factor, seed, config, device)
            result.runs.append(run)
            if on_run is not None:
                on_run(run)
    return result


# --- DEFT's beta pieces ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BetaProposal:
    """Piecewise betas for DEFT and the factor clusters they separate (high IFP first).

    Attributes:
        betas: the proposed betas, descending, ending with ``final_beta``.
        clusters: the factor names of each cluster.
        ranges: (lowest, highest) IFP of each cluster.
        unfrozen: factors without any IFP (left out of the clusters).
    """

    betas: list[float]
    clusters: list[list[str]]
    ranges: list[tuple[float, float]]
    """(lowest, highest) IFP of each cluster."""
    unfrozen: list[str]
    """Factors without any IFP (left out of the clusters)."""


def propose_beta_pieces(
    ifps: Mapping[str, Sequence[float]],
    final_beta: float = 1.0,
    min_ratio: float = 1.25,
    trim: float = 0.0,
) -> BetaProposal:
    """Betas between consecutive IFP clusters (docs/methods.md, "The annealing test and
    information freezing points").

    A factor's IFP range is its [trim, 1 - trim] quantile interval of the finite IFPs. Sorted by
    their upper ends, factors join the current cluster while their upper end is at least the
    cluster's lower end / ``min_ratio``; the beta between clusters a > b is
    sqrt(low(a) * high(b)). Gap betas at or below ``final_beta`` are dropped.

    Args:
        ifps: factor name -> its IFPs over seeds (NaN where a run had none).
        final_beta: the last piece.
        min_ratio: how close (as a ratio, >= 1) two factors' ranges may be and still be one cluster.
        trim: the quantile cut from each end of a factor's IFPs, in [0, 0.5).

    Returns:
        The betas, the clusters with their IFP ranges, and the factors without an IFP.

    Raises:
        ValueError: ``min_ratio`` < 1 or ``trim`` outside [0, 0.5).
    """
    if min_ratio < 1:
        raise ValueError(f"min_ratio must be >= 1, got {min_ratio}")
    if not 0 <= trim < 0.5:
        raise ValueError(f"trim must lie in [0, 0.5), got {trim}")
    ranges: dict[str, tuple[float, float]] = {}
    unfrozen = []
    for name, values in ifps.items():
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            unfrozen.append(name)
            continue
        ranges[name] = (float(np.quantile(finite, trim)), float(np.quantile(finite, 1 - trim)))
    clusters: list[list[str]] = []
    bounds: list[tuple[float, float]] = []
    for name in sorted(ranges, key=lambda n: -ranges[n][1]):
        low, high = ranges[name]
        if clusters and high * min_ratio >= bounds[-1][0]:
            clusters[-1].append(name)
            bounds[-1] = (min(bounds[-1][0], low), bounds[-1][1])
        else:
            clusters.append([name])
            bounds.append((low, high))
    gaps = [math.sqrt(a[0] * b[1]) for a, b in itertools.pairwise(bounds)]
    betas = [g for g in gaps if g > final_beta] + [final_beta]
    return BetaProposal(betas=betas, clusters=clusters, ranges=bounds, unfrozen=unfrozen)
