"""The ground-truth dataset interface shared by training, metrics and studies.

``GroundTruthDataset`` is compatible with disentanglement_lib's ``GroundTruthData``:
``num_factors``, ``factors_num_values``, ``observation_shape``, ``sample_factors(n, rng)``,
``sample_observations_from_factors(factors, rng)``, ``sample(n, rng)`` and
``sample_observations(n, rng)``, where ``factors`` are *latent* factors only and nuisance factors
are resampled with the passed RNG. Unlike dlib, observations are NCHW (torch layout): float32 in
[0, 1] by default, or uint8 with ``as_uint8=True``. It is also a ``torch.utils.data.Dataset`` over
the full grid in canonical C order, for full-dataset evaluations.

An optional ``ObservationTransform`` (the colour, noisy and scream variants) maps the store's uint8
images to float images using the passed RNG, in disentanglement_lib's call order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from disent_core.data.factor_space import FactorSpace, Rng
from disent_core.data.provenance import DatasetProvenance
from disent_core.data.stores import ObservationStore


class ObservationTransform:
    """Maps uint8 (N, C, H, W) store images to float32 (N, C', H, W) in [0, 1] using ``rng``."""

    out_channels: int | None = None
    """Channels after the transform, or None when unchanged."""

    def __call__(self, images: np.ndarray, rng: Rng) -> np.ndarray:
        raise NotImplementedError


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1.

    Args:
        images: uint8 images, any shape.

    Returns:
        float32 images in [0, 1], of the same shape.
    """
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float 0..1 -> uint8 0..255 (rounded).

    Args:
        images: float images in [0, 1] (values outside are clipped), any shape.

    Returns:
        uint8 images in 0..255, of the same shape.
    """
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


@dataclass
class GroundTruthDataset(torch.utils.data.Dataset):
    """A factor grid plus the store holding its images and an optional variant transform."""

    name: str
    factor_space: FactorSpace
    store: ObservationStore
    transform: ObservationTransform | None = None
    item_seed: int = 0
    """Seed of the per-item RNG that ``__getitem__`` uses for stochastic transforms."""
    provenance: DatasetProvenance = field(default_factory=DatasetProvenance)
    """Where the observations come from (default: procedural); recorded with every result."""

    def __post_init__(self) -> None:
        if len(self.store) != self.factor_space.size:
            raise ValueError(
                f"dataset {self.name!r}: store holds {len(self.store)} images but the factor grid "
                f"{self.factor_space.sizes} has {self.factor_space.size}"
            )

    # --- dlib-compatible description ---------------------------------------------------------
    @property
    def num_factors(self) -> int:
        """Number of latent (scored) factors."""
        return len(self.factor_space.latent_indices)

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.factor_space.latent_sizes)

    @property
    def factor_names(self) -> list[str]:
        return list(self.factor_space.latent_names)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the observations this dataset returns."""
        c, h, w = self.store.shape
        if self.transform is not None and self.transform.out_channels is not None:
            c = self.transform.out_channels
        return (c, h, w)

    @property
    def is_binary(self) -> bool:
        """True when observations are exactly 0 or 1 (Bernoulli reconstruction is natural)."""
        return self.store.binary and self.transform is None

    # --- sampling ----------------------------------------------------------------------------
    def sample_factors(self, n: int, rng: Rng) -> np.ndarray:
        """Latent factors (n, num_factors), as the factor space draws them (uniform unless it says otherwise).

        Args:
            n: how many factor vectors.
            rng: a numpy ``Generator`` or ``RandomState``.

        Returns:
            (n, num_factors) int64 latent factor indices.
        """
        return self.factor_space.sample_factors(n, rng)

    @property
    def observations_are_deterministic(self) -> bool:
        """True when an observation is a function of its grid point alone (no random transform)."""
        return self.transform is None

    def grid_index(self, factors: np.ndarray, rng: Rng) -> np.ndarray:
        """Grid indices (N,) of latent factors, nuisance factors drawn from ``rng`` exactly as
        ``sample_observations_from_factors`` draws them.

        Args:
            factors: (N, num_factors) integer latent factor indices.
            rng: a numpy ``Generator`` or ``RandomState`` the nuisance factors are drawn from.

        Returns:
            (N,) int64 flat C-order indices into the full grid.
        """
        return self.factor_space.factors_to_index(self.factor_space.complete(factors, rng))

    def observations_at(self, index: np.ndarray, rng: Rng, as_uint8: bool = False) -> np.ndarray:
        """Images of grid indices (N,); a transform draws from ``rng``.

        Args:
            index: (N,) integer flat C-order grid indices.
            rng: a numpy ``Generator`` or ``RandomState`` a transform draws from (else unused).
            as_uint8: return uint8 in 0..255 instead of float32 in [0, 1].

        Returns:
            Images (N, C, H, W): float32 in [0, 1], or uint8.
        """
        images = self.store[index]
        if self.transform is None:
            return images if as_uint8 else to_float(images)
        out = self.transform(images, rng)
        return to_uint8(out) if as_uint8 else out

    def observations_from_full_factors(
        self, full_factors: np.ndarray, rng: Rng, as_uint8: bool = False
    ) -> np.ndarray:
        """Images of full factor vectors (nuisance included).

        Args:
            full_factors: (N, num_factors of the factor space) integer indices, nuisance included.
            rng: a numpy ``Generator`` or ``RandomState`` a transform draws from (else unused).
            as_uint8: return uint8 in 0..255 instead of float32 in [0, 1].

        Returns:
            Images (N, C, H, W): float32 in [0, 1], or uint8.
        """
        return self.observations_at(self.factor_space.factors_to_index(full_factors), rng, as_uint8)

    def sample_observations_from_factors(
        self, factors: np.ndarray, rng: Rng, as_uint8: bool = False
    ) -> np.ndarray:
        """Observations (N, C, H, W) of latent factors; nuisance factors drawn from ``rng``.

        Args:
            factors: (N, num_factors) integer latent factor indices.
            rng: a numpy ``Generator`` or ``RandomState`` (nuisance factors, then any transform).
            as_uint8: return uint8 in 0..255 instead of float32 in [0, 1].

        Returns:
            Images (N, C, H, W): float32 in [0, 1], or uint8.
        """
        return self.observations_at(self.grid_index(factors, rng), rng, as_uint8)

    def sample(self, n: int, rng: Rng, as_uint8: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(latent factors, observations) of ``n`` draws of ``sample_factors``.

        Args:
            n: how many points.
            rng: a numpy ``Generator`` or ``RandomState``.
            as_uint8: return uint8 observations in 0..255 instead of float32 in [0, 1].

        Returns:
            (factors (n, num_factors) int64, observations (n, C, H, W)).
        """
        factors = self.sample_factors(n, rng)
        return factors, self.sample_observations_from_factors(factors, rng, as_uint8=as_uint8)

    def sample_observations(self, n: int, rng: Rng, as_uint8: bool = False) -> np.ndarray:
        """Observations of ``n`` draws of ``sample_factors`` (dlib's ``sample_observations``).

        Args:
            n: how many observations.
            rng: a numpy ``Generator`` or ``RandomState``.
            as_uint8: return uint8 in 0..255 instead of float32 in [0, 1].

        Returns:
            Images (n, C, H, W): float32 in [0, 1], or uint8.
        """
        return self.sample(n, rng, as_uint8=as_uint8)[1]

    # --- torch Dataset over the canonical grid -----------------------------------------------
    def __len__(self) -> int:
        return self.factor_space.size

    def __getitem__(self, index: int) -> torch.Tensor:
        """Float (C, H, W) image of grid point ``index``; variants draw from a per-item RNG."""
        full = self.factor_space.index_to_factors(np.asarray([index]))
        rng = np.random.default_rng([self.item_seed, int(index)])
        return torch.from_numpy(self.observations_from_full_factors(full, rng)[0])
