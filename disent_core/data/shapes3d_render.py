"""An offline 3DShapes stand-in (Burgess & Kim 2018) with the real factor grid, for tests.

The real images show a room corner: sky on top, two wall faces, a floor, and one object in the
middle. This renderer draws a flat, recognisable version (docs/provenance.md, "Datasets"):

- sky: rows y < 14 (22 %), constant light blue;
- wall: rows 14 <= y < 40, colour hsv(wall_hue, 0.8, 0.9); the face right of the corner at
  x = 32 + 40 sin(orientation) is shaded by 0.8;
- floor: rows y >= 40 (38 %), colour hsv(floor_hue, 0.8, 0.9), darkening towards the horizon;
- object: centred, standing on y = 52, half-size r = 0.12 * 64 * scale px; in units of r its mask
  is a square (cube), a square under an elliptic cap (cylinder), a disc (sphere) or a vertical
  stadium (capsule); colour hsv(object_hue, 0.8, 0.9), shaded by 0.75 right of
  u = 0.6 sin(orientation).

It is not the real renderer and not meant for results; it gives every factor a visible effect so
that pipelines and metrics can be exercised offline. Rendering is vectorised over a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import ProceduralStore

IMAGE_SIZE = 64
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FULL_SIZES = (10, 10, 10, 8, 4, 15)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")

SKY_RGB = (0.55, 0.8, 0.95)
SATURATION, VALUE = 0.8, 0.9
SKY_END, FLOOR_START, OBJECT_BOTTOM = 14, 40, 52


def full_factor_space() -> FactorSpace:
    """The real 3DShapes grid: names, sizes and label values (orientation in degrees)."""
    hues = tuple(np.linspace(0.0, 0.9, 10))
    values = (
        hues,
        hues,
        hues,
        tuple(np.linspace(0.75, 1.25, 8)),
        (0.0, 1.0, 2.0, 3.0),
        tuple(np.linspace(-30.0, 30.0, 15)),
    )
    return FactorSpace(FACTOR_NAMES, FULL_SIZES, values=values)


def hsv_to_rgb(hue: np.ndarray, saturation: float | np.ndarray, value: float | np.ndarray) -> np.ndarray:
    """HSV in [0, 1] -> RGB in [0, 1], shape ``hue.shape + (3,)`` (the standard six-sector formula).

    Args:
        hue: hues, any shape; wrapped into [0, 1).
        saturation: saturation in [0, 1], broadcast against ``hue``.
        value: value (brightness) in [0, 1], broadcast against ``hue``.

    Returns:
        float64 RGB in [0, 1], of the broadcast shape + (3,).
    """
    hue, saturation, value = np.broadcast_arrays(
        np.asarray(hue, dtype=np.float64), np.asarray(saturation, dtype=np.float64),
        np.asarray(value, dtype=np.float64),
    )
    h6 = np.mod(hue, 1.0) * 6.0
    sector = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p = value * (1.0 - saturation)
    q = value * (1.0 - saturation * f)
    t = value * (1.0 - saturation * (1.0 - f))
    table = np.stack([
        np.stack([value, t, p], -1), np.stack([q, value, p], -1), np.stack([p, value, t], -1),
        np.stack([p, q, value], -1), np.stack([t, p, value], -1), np.stack([value, p, q], -1),
    ])
    return np.take_along_axis(table, sector[None, ..., None], axis=0)[0]


_OBJECT_CAP = 0.35  # cylinder: height of the elliptic top, in units of r
_CAPSULE_HALF_LENGTH, _CAPSULE_RADIUS = 0.35, 0.65


def _object_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Object mask in object units: u right, v down, the body spanning [-1, 1]^2."""
    if shape == 2:  # sphere
        return u * u + v * v < 1.0
    if shape == 3:  # capsule: points within a radius of a vertical segment
        along = np.clip(v, -_CAPSULE_HALF_LENGTH, _CAPSULE_HALF_LENGTH)
        return u * u + (v - along) ** 2 < _CAPSULE_RADIUS**2
    box = (np.abs(u) < 1.0) & (np.abs(v) < 1.0)
    if shape == 0:  # cube
        return box
    return box | (u * u + ((v + 1.0) / _OBJECT_CAP) ** 2 < 1.0)  # cylinder


def _palette(floor_hue: np.ndarray, wall_hue: np.ndarray, object_hue: np.ndarray) -> np.ndarray:
    """Per-image colours (N, K, 3) uint8: sky, wall lit/shaded, floor rows, object lit/shaded."""
    floor_rows = np.arange(FLOOR_START, IMAGE_SIZE) + 0.5
    floor_shade = 0.8 + 0.2 * (floor_rows - FLOOR_START) / (IMAGE_SIZE - FLOOR_START)
    wall = hsv_to_rgb(wall_hue, SATURATION, VALUE)[:, None, :] * np.array([1.0, 0.8])[:, None]
    floor = hsv_to_rgb(floor_hue, SATURATION, VALUE)[:, None, :] * floor_shade[:, None]
    obj = hsv_to_rgb(object_hue, SATURATION, VALUE)[:, None, :] * np.array([1.0, 0.75])[:, None]
    sky = np.broadcast_to(np.asarray(SKY_RGB), (len(floor_hue), 1, 3))
    return np.rint(np.concatenate([sky, wall, floor, obj], axis=1) * 255.0).astype(np.uint8)


_SKY, _WALL, _FLOOR = 0, 1, 3
_OBJECT = _FLOOR + IMAGE_SIZE - FLOOR_START


def render_shapes3d(
    floor_hue: np.ndarray,
    wall_hue: np.ndarray,
    object_hue: np.ndarray,
    scale: np.ndarray,
    shape: np.ndarray,
    orientation: np.ndarray,
) -> np.ndarray:
    """Render scenes from factor *values* (hues in [0, 1), scale, shape 0..3, degrees).

    All arguments are broadcast to one batch of length N. Each pixel gets a label (sky, wall face,
    floor row, object face) that indexes the image's palette.

    Args:
        floor_hue: floor hue in [0, 1).
        wall_hue: wall hue in [0, 1).
        object_hue: object hue in [0, 1).
        scale: object size factor (the real grid: 0.75..1.25).
        shape: 0 cube, 1 cylinder, 2 sphere, 3 capsule (rounded to integers).
        orientation: the room's turn in degrees (the real grid: -30..30).

    Returns:
        uint8 (N, 3, 64, 64) RGB images.

    Raises:
        ValueError: a shape outside 0..3.
    """
    floor_hue, wall_hue, object_hue, scale, shape, orientation = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=np.float64))
          for v in (floor_hue, wall_hue, object_hue, scale, shape, orientation))
    )
    shape = np.rint(shape).astype(np.int64)
    if np.any((shape < 0) | (shape > 3)):
        raise ValueError(f"shape must be 0..3 ({', '.join(SHAPE_NAMES)}), got {np.unique(shape)}")
    n = len(shape)
    turn = np.sin(np.deg2rad(orientation))
    centres = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
    y, x = centres[None, :, None], centres[None, None, :]

    background = np.where(centres < FLOOR_START, _WALL, _FLOOR + centres - FLOOR_START - 0.5)
    background[centres < SKY_END] = _SKY
    labels = np.broadcast_to(background.astype(np.int64)[None, :, None], (n, IMAGE_SIZE, IMAGE_SIZE)).copy()
    corner = (32.0 + 40.0 * turn).astype(np.float32)[:, None, None]
    labels += ((y < FLOOR_START) & (y >= SKY_END) & (x > corner)).astype(np.int64)  # shaded wall face

    radius = (0.12 * IMAGE_SIZE * scale).astype(np.float32)[:, None, None]
    u = (x - IMAGE_SIZE / 2) / radius
    v = (y - (OBJECT_BOTTOM - radius)) / radius
    split = (0.6 * turn).astype(np.float32)[:, None, None]
    for k in range(4):
        sel = np.nonzero(shape == k)[0]
        if len(sel):
            mask = _object_mask(k, u[sel], v[sel])
            face = _OBJECT + (u[sel] > split[sel])
            labels[sel] = np.where(mask, face, labels[sel])

    palette = _palette(floor_hue, wall_hue, object_hue)
    image = palette[np.arange(n)[:, None, None], labels]  # (N, H, W, 3)
    return np.ascontiguousarray(image.transpose(0, 3, 1, 2))


class GridRenderer:
    """Renders full factor *indices* of a (possibly reduced) grid; picklable for workers."""

    def __init__(self, space: FactorSpace) -> None:
        self.values = [np.asarray(v) for v in space.values]

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        return render_shapes3d(*(self.values[k][factors[:, k]] for k in range(6)))


def shapes3d_procedural(sizes: Sequence[int] | None = None) -> GroundTruthDataset:
    """The 3DShapes stand-in on the full grid (10, 10, 10, 8, 4, 15) or an evenly reduced one.

    ``sizes`` gives the number of levels of each of the six factors; each keeps its full value
    range (``FactorSpace.reduced``). Images are rendered on demand (the full grid would be 5.9 GB).

    Args:
        sizes: six level counts, each in [1, the full size] (default: the full grid).

    Returns:
        The dataset ``"shapes3d_procedural"`` (RGB 64x64, all six factors latent).

    Raises:
        ValueError: not six sizes, or a size out of range.
    """
    space, _ = full_factor_space().reduced(FULL_SIZES if sizes is None else tuple(int(s) for s in sizes))
    store = ProceduralStore(
        GridRenderer(space), space.index_to_factors, space.size, (3, IMAGE_SIZE, IMAGE_SIZE)
    )
    return GroundTruthDataset("shapes3d_procedural", space, store)
