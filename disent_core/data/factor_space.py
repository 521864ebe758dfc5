"""Discrete ground-truth factor spaces: names, sizes, values and C-order indexing.

Every ground-truth dataset is a full Cartesian grid of factor values stored in C order (the last
factor changes fastest), so ``index = sum_k f_k * prod_{j>k} n_j``. Some factors are *latent*
(scored by metrics, sampled by ``sample_factors``) and the rest are *nuisance* factors that are
resampled uniformly for every observation (dlib's ``SplitDiscreteStateSpace``: the SmallNORB
instance, the constant dSprites colour, the shape of ``dsprites_noshape``).

Randomness is always passed in: a ``numpy.random.Generator`` or, for disentanglement_lib
compatibility, a ``numpy.random.RandomState``. The global numpy RNG is never used. Factors are drawn
one column at a time, in dlib's order (latent factors, then nuisance factors), so a
``RandomState`` reproduces dlib's draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Rng = np.random.Generator | np.random.RandomState


def randint(rng: Rng, high: int, size: tuple[int, ...]) -> np.ndarray:
    """Uniform integers in ``[0, high)`` from either numpy RNG flavour, as int64.

    Args:
        rng: a numpy ``Generator`` or ``RandomState``.
        high: the exclusive upper bound (>= 1).
        size: the output shape.

    Returns:
        int64 array of shape ``size``.

    Raises:
        TypeError: ``rng`` is neither RNG flavour.
    """
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, high, size=size, dtype=np.int64)
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, size=size).astype(np.int64)
    raise TypeError(
        f"expected a numpy Generator or RandomState, got {type(rng).__name__}; "
        "pass np.random.default_rng(seed)"
    )


def uniform_columns(rng: Rng, sizes: Sequence[int], n: int) -> np.ndarray:
    """(n, len(sizes)) int64, column k uniform in ``[0, sizes[k])``, drawn column by column.

    This is dlib's order (``SplitDiscreteStateSpace`` draws one factor at a time), so a
    ``RandomState`` gives dlib's numbers; it is also about 4 times faster than one ``integers``
    call with an array of bounds, numpy's slow path.

    Args:
        rng: a numpy ``Generator`` or ``RandomState``.
        sizes: the number of levels of each column.
        n: the number of rows.

    Returns:
        (n, len(sizes)) int64 array.
    """
    out = np.empty((n, len(sizes)), dtype=np.int64)
    for k, size in enumerate(sizes):
        out[:, k] = randint(rng, int(size), (n,))
    return out


@dataclass(frozen=True)
class FactorSpace:
    """A discrete factor grid with a latent/nuisance split.

    ``values`` optionally holds the real value of every factor level (for example dSprites'
    ``scale = linspace(0.5, 1, 6)``); ``latent_indices`` lists the factors that are scored, in the
    order in which ``sample_factors`` returns them. All other factors are nuisance factors.
    """

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    latent_indices: tuple[int, ...] | None = None
    values: tuple[tuple[float, ...], ...] | None = None
    bases: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        names, sizes = tuple(self.names), tuple(int(s) for s in self.sizes)
        if len(names) != len(sizes):
            raise ValueError(f"{len(names)} factor names but {len(sizes)} sizes")
        if len(set(names)) != len(names):
            raise ValueError(f"factor names must be unique, got {names}")
        if any(s < 1 for s in sizes):
            raise ValueError(f"factor sizes must be >= 1, got {sizes}")
        latent = tuple(range(len(sizes))) if self.latent_indices is None else self.latent_indices
        latent = tuple(int(i) for i in latent)
        if len(set(latent)) != len(latent) or any(not 0 <= i < len(sizes) for i in latent):
            raise ValueError(f"latent_indices {latent} must be distinct indices < {len(sizes)}")
        if self.values is not None:
            values = tuple(tuple(float(v) for v in vs) for vs in self.values)
            for name, size, vs in zip(names, sizes, values, strict=True):
                if len(vs) != size:
                    raise ValueError(f"factor {name!r} has {size} levels but {len(vs)} values")
            object.__setattr__(self, "values", values)
        bases = np.cumprod(((*sizes[1:], 1))[::-1])[::-1]
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "latent_indices", latent)
        object.__setattr__(self, "bases", tuple(int(b) for b in bases))

    # --- shape -------------------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        """Number of factors, latent and nuisance."""
        return len(self.sizes)

    @property
    def size(self) -> int:
        """Number of points in the grid (images in the dataset)."""
        return int(np.prod(self.sizes, dtype=np.int64))

    @property
    def nuisance_indices(self) -> tuple[int, ...]:
        """Factors that are resampled for every observation and never scored."""
        return tuple(i for i in range(self.num_factors) if i not in self.latent_indices)

    @property
    def latent_names(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.latent_indices)

    @property
    def latent_sizes(self) -> tuple[int, ...]:
        return tuple(self.sizes[i] for i in self.latent_indices)

    # --- indexing ----------------------------------------------------------------------------
    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """Full factor vectors (N, num_factors) -> flat C-order indices (N,).

        Args:
            factors: (N, num_factors) integer factor indices, nuisance included.

        Returns:
            (N,) int64 indices in [0, size).

        Raises:
            ValueError: a wrong shape, or a factor index outside [0, sizes[k]).
        """
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"expected factors of shape (N, {self.num_factors}), got {factors.shape}"
            )
        if np.any(factors < 0) or np.any(factors >= np.asarray(self.sizes)):
            raise ValueError(f"factor values out of range for sizes {self.sizes}")
        return factors @ np.asarray(self.bases, dtype=np.int64)

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        """Flat C-order indices (N,) -> full factor vectors (N, num_factors).

        Args:
            index: (N,) integer indices in [0, size).

        Returns:
            (N, num_factors) int64 factor indices.

        Raises:
            ValueError: an index outside [0, size).
        """
        index = np.asarray(index, dtype=np.int64)
        if np.any(index < 0) or np.any(index >= self.size):
            raise ValueError(f"indices must lie in [0, {self.size})")
        return np.stack(np.unravel_index(index, self.sizes), axis=-1).astype(np.int64)

    def factor_values(self, factors: np.ndarray) -> np.ndarray:
        """Full factor indices (N, num_factors) -> their real values (N, num_factors).

        Args:
            factors: (N, num_factors) integer factor indices.

        Returns:
            (N, num_factors) float64: the ``values`` of each level, or the indices when there are none.
        """
        if self.values is None:
            return np.asarray(factors, dtype=np.float64)
        factors = np.asarray(factors, dtype=np.int64)
        return np.stack(
            [np.asarray(vs)[factors[:, k]] for k, vs in enumerate(self.values)], axis=-1
        )

    # --- sampling ----------------------------------------------------------------------------
    def sample_all_factors(self, n: int, rng: Rng) -> np.ndarray:
        """Uniform full factor vectors (n, num_factors).

        Args:
            n: how many vectors.
            rng: a numpy ``Generator`` or ``RandomState``.

        Returns:
            (n, num_factors) int64 factor indices, nuisance included.
        """
        return uniform_columns(rng, self.sizes, n)

    def sample_factors(self, n: int, rng: Rng) -> np.ndarray:
        """Uniform latent factor vectors (n, num_latent), as dlib's ``sample_factors``.

        Args:
            n: how many vectors.
            rng: a numpy ``Generator`` or ``RandomState``.

        Returns:
            (n, num_latent) int64 latent factor indices, in ``latent_indices`` order.
        """
        return uniform_columns(rng, self.latent_sizes, n)

    def complete(self, latent_factors: np.ndarray, rng: Rng) -> np.ndarray:
        """Latent factors (n, num_latent) -> full factors with nuisance factors drawn uniformly.

        Args:
            latent_factors: (n, num_latent) integer latent factor indices.
            rng: a numpy ``Generator`` or ``RandomState`` the nuisance factors are drawn from.

        Returns:
            (n, num_factors) int64 full factor indices.

        Raises:
            ValueError: ``latent_factors`` is not (n, num_latent).
        """
        latent_factors = np.asarray(latent_factors, dtype=np.int64)
        if latent_factors.ndim != 2 or latent_factors.shape[1] != len(self.latent_indices):
            raise ValueError(
                f"expected latent factors of shape (N, {len(self.latent_indices)}) for "
                f"{self.latent_names}, got {latent_factors.shape}"
            )
        n = latent_factors.shape[0]
        full = np.zeros((n, self.num_factors), dtype=np.int64)
        full[:, list(self.latent_indices)] = latent_factors
        nuisance = list(self.nuisance_indices)
        if nuisance:
            full[:, nuisance] = uniform_columns(rng, [self.sizes[i] for i in nuisance], n)
        return full

    def traversal(self, k: int, base: Sequence[int]) -> np.ndarray:
        """All latent vectors that equal ``base`` except latent factor ``k``, which sweeps its range.

        Args:
            k: position of the swept factor among the latent factors.
            base: a latent factor vector (num_latent,).

        Returns:
            (latent_sizes[k], num_latent) int64, row i with factor k at level i.
        """
        base = np.asarray(base, dtype=np.int64)
        out = np.repeat(base[None, :], self.latent_sizes[k], axis=0)
        out[:, k] = np.arange(self.latent_sizes[k])
        return out

    def reduced(self, sizes: Sequence[int]) -> tuple[FactorSpace, list[np.ndarray]]:
        """A sub-grid keeping ``sizes[k]`` evenly spread levels of each factor.

        Returns the new space and, per factor, the levels of this space that it keeps, so that a
        renderer can map reduced indices back to the full grid's values.

        Args:
            sizes: the new number of levels of every factor, each in [1, its full size].

        Returns:
            (the reduced space, per factor an int64 array of the kept levels of this space).

        Raises:
            ValueError: not one size per factor, or a size out of range.
        """
        if len(sizes) != self.num_factors:
            raise ValueError(f"need {self.num_factors} reduced sizes, got {len(sizes)}")
        keep = []
        for name, full, new in zip(self.names, self.sizes, sizes, strict=True):
            if not 1 <= new <= full:
                raise ValueError(f"reduced size of {name!r} must be in [1, {full}], got {new}")
            keep.append(np.unique(np.round(np.linspace(0, full - 1, new)).astype(np.int64)))
        values = None
        if self.values is not None:
            values = tuple(tuple(np.asarray(vs)[kp]) for vs, kp in zip(self.values, keep, strict=True))
        space = FactorSpace(self.names, tuple(sizes), self.latent_indices, values)
        return space, keep
