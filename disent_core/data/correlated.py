"""DEFT's correlated-factor dataset (erow/disentanglement_lib
``disentanglement_lib/data/ground_truth/correlation.py``; docs/provenance.md, "Correlated
factors"), rendered offline.

[CONFIRMED-CODE] 64x64x1 binary images of an 11x11 filled triangle at (x, y) in a 32x32 grid of
positions; factors (orientation bin, x, y); the triangle's orientation is the angle of
(x - 16, y - 16) plus N(0, 45 degrees) noise, digitised into 32 bins, so orientation is strongly
correlated with position. DEFT's claim: TC-based methods (beta-TCVAE) fail on such data.

[INFERRED] geometry: the triangle's centre sits at pixel (16 + x + 0.5, 16 + y + 0.5) (so
positions span the central 32 pixels, as in dSprites); it is isosceles with its tip 5.5 px from
the centre in the direction theta and its two base corners 5.5 px away at theta +- 140 degrees
(so it fits 11x11 and has no rotational symmetry); angles are measured in image coordinates
(x right, y down) with atan2, bins cover [-pi, pi) and bin b is drawn at its centre angle
-pi + (b + 0.5) * 2 pi / 32. A pixel is on iff its centre lies inside the triangle.

Sampling, and what each consumer sees:

- The images form the full Cartesian grid 32 x 32 x 32 in C order (orientation, x, y), so the
  dataset indexes, traverses and renders like any other ``GroundTruthDataset``, and
  ``__getitem__`` / full-grid evaluations see every combination once (no correlation).
- ``sample_factors`` (and ``sample_all_factors``, which the training stream uses) draw the
  *correlated* distribution: x, y uniform, orientation from the noisy angle. Training therefore
  sees correlated factors, and so do the metrics, which all draw their i.i.d. points and their
  fixed-factor batches through ``dataset.sample_factors`` (BetaVAE/FactorVAE scores then overwrite
  the fixed factor's column, so within a batch that factor is constant and the others keep their
  correlated draw).
- ``sampling="uniform"`` gives the same images with independent uniform factors: the control
  condition for the same methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace, Rng, randint
from disent_core.data.stores import ProceduralStore

IMAGE_SIZE = 64
GRID = 32
ORIENTATION_BINS = 32
FACTOR_NAMES = ("orientation", "posX", "posY")
TRIANGLE_RADIUS = 5.5
BASE_CORNER_ANGLE = np.deg2rad(140.0)
POSITION_OFFSET = 16
NOISE_DEG = 45.0

_WINDOW = 13
_HALF = 6


def bin_centres() -> np.ndarray:
    """Orientation (radians) drawn for each of the 32 bins."""
    width = 2 * np.pi / ORIENTATION_BINS
    return -np.pi + (np.arange(ORIENTATION_BINS) + 0.5) * width


def orientation_bin(angle: np.ndarray) -> np.ndarray:
    """Angles (radians, any range) -> bins 0..31 of [-pi, pi).

    Args:
        angle: angles in radians, any shape; wrapped into [-pi, pi).

    Returns:
        int64 bins in [0, 31], of ``angle``'s shape.
    """
    wrapped = np.mod(np.asarray(angle, dtype=np.float64) + np.pi, 2 * np.pi)
    return np.minimum((wrapped / (2 * np.pi) * ORIENTATION_BINS).astype(np.int64), ORIENTATION_BINS - 1)


def position_angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The angle of (x - 16, y - 16) in image coordinates (y down), radians in (-pi, pi].

    Args:
        x: grid x positions (0..31), any shape broadcast against ``y``.
        y: grid y positions (0..31).

    Returns:
        float64 angles in radians, in (-pi, pi].
    """
    return np.arctan2(np.asarray(y, dtype=np.float64) - 16.0, np.asarray(x, dtype=np.float64) - 16.0)


@dataclass(frozen=True)
class CorrelatedFactorSpace(FactorSpace):
    """The (orientation, x, y) grid whose i.i.d. sampling draws orientation from position."""

    noise_deg: float = NOISE_DEG
    correlated: bool = True

    def sample_all_factors(self, n: int, rng: Rng) -> np.ndarray:
        """(orientation, x, y) with x, y uniform and orientation the noisy bin of their angle.

        Uniform and independent instead when ``correlated`` is False.

        Args:
            n: how many factor vectors.
            rng: a numpy ``Generator`` or ``RandomState``.

        Returns:
            (n, 3) int64 factor indices (orientation bin 0..31, x 0..31, y 0..31).
        """
        if not self.correlated:
            return super().sample_all_factors(n, rng)
        position = randint(rng, GRID, (n, 2))
        noise = _normal(rng, n) * np.deg2rad(self.noise_deg)
        orientation = orientation_bin(position_angle(position[:, 0], position[:, 1]) + noise)
        return np.column_stack([orientation, position])

    def sample_factors(self, n: int, rng: Rng) -> np.ndarray:
        """The same draw as ``sample_all_factors``: every factor is latent.

        Args:
            n: how many factor vectors.
            rng: a numpy ``Generator`` or ``RandomState``.

        Returns:
            (n, 3) int64 factor indices (orientation bin, x, y).
        """
        return self.sample_all_factors(n, rng)  # every factor is latent


def _normal(rng: Rng, n: int) -> np.ndarray:
    if isinstance(rng, np.random.Generator):
        return rng.standard_normal(n)
    return rng.standard_normal(size=n)


def render_triangles(orientation: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Triangles at grid positions ``x``, ``y`` (0..31) pointing along ``orientation`` (radians).

    Args:
        orientation: the tip's direction in radians (image coordinates, y down), (N,) or a scalar.
        x: grid x positions in 0..31, broadcast against ``orientation``.
        y: grid y positions in 0..31, broadcast against ``orientation``.

    Returns:
        uint8 (N, 1, 64, 64) with pixels 0 or 255.

    Raises:
        ValueError: a position lies outside 0..31.
    """
    orientation, x, y = np.broadcast_arrays(
        np.atleast_1d(np.asarray(orientation, dtype=np.float64)),
        np.atleast_1d(np.asarray(x, dtype=np.int64)),
        np.atleast_1d(np.asarray(y, dtype=np.int64)),
    )
    if np.any((x < 0) | (x >= GRID) | (y < 0) | (y >= GRID)):
        raise ValueError(f"positions must lie in 0..{GRID - 1}")
    n = len(orientation)
    angles = orientation[:, None] + np.array([0.0, BASE_CORNER_ANGLE, -BASE_CORNER_ANGLE])
    corners = TRIANGLE_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (N, 3, 2)
    offsets = np.arange(_WINDOW) - _HALF  # pixel centres relative to the triangle's centre
    px, py = np.meshgrid(offsets, offsets)  # (W, W), px along columns
    inside = np.ones((n, _WINDOW, _WINDOW), dtype=bool)
    for i in range(3):
        a, b = corners[:, i], corners[:, (i + 1) % 3]
        cross = (b[:, 0] - a[:, 0])[:, None, None] * (py - a[:, 1, None, None]) - (
            b[:, 1] - a[:, 1]
        )[:, None, None] * (px - a[:, 0, None, None])
        inside &= cross > 0  # corners run counter-clockwise in (x right, y down) coordinates
    out = np.zeros((n, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    pixels = inside.view(np.uint8) * np.uint8(255)
    rows, cols = y + POSITION_OFFSET - _HALF, x + POSITION_OFFSET - _HALF
    for i in range(n):
        out[i, 0, rows[i]:rows[i] + _WINDOW, cols[i]:cols[i] + _WINDOW] = pixels[i]
    return out


class TriangleRenderer:
    """Renders full factor indices (orientation bin, x, y); picklable for workers."""

    def __init__(self) -> None:
        self.centres = bin_centres()

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        return render_triangles(self.centres[factors[:, 0]], factors[:, 1], factors[:, 2])


def dsprites_correlated(
    sampling: Literal["correlated", "uniform"] = "correlated", noise_deg: float = NOISE_DEG
) -> GroundTruthDataset:
    """DEFT's correlated triangles: 32,768 binary 64x64 images, factors (orientation, posX, posY).

    ``sampling="correlated"`` (default) draws orientation from the angle of the position plus
    N(0, ``noise_deg``) noise; ``"uniform"`` draws all factors independently.

    Args:
        sampling: ``"correlated"`` or ``"uniform"``: how ``sample_factors`` draws.
        noise_deg: standard deviation of the orientation noise, degrees, >= 0.

    Returns:
        The procedural dataset ``"dsprites_correlated"``.

    Raises:
        ValueError: an unknown ``sampling`` or a negative ``noise_deg``.
    """
    if sampling not in ("correlated", "uniform"):
        raise ValueError(f"sampling must be 'correlated' or 'uniform', got {sampling!r}")
    if noise_deg < 0:
        raise ValueError(f"noise_deg must be >= 0, got {noise_deg}")
    positions = tuple(float(v) for v in range(GRID))
    values = (tuple(bin_centres()), positions, positions)
    space = CorrelatedFactorSpace(
        FACTOR_NAMES, (ORIENTATION_BINS, GRID, GRID), values=values,
        noise_deg=float(noise_deg), correlated=sampling == "correlated",
    )
    store = ProceduralStore(
        TriangleRenderer(), space.index_to_factors, space.size, (1, IMAGE_SIZE, IMAGE_SIZE), binary=True
    )
    return GroundTruthDataset("dsprites_correlated", space, store)
