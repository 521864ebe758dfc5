"""An offline numpy renderer of dSprites (Matthey et al. 2017) with the real factor grid.

Geometry (64 x 64 canvas, continuous pixel coordinates, y pointing down): pixel (row r, col c) is
on iff its centre (c + 0.5, r + 0.5) lies strictly inside the shape. The sprite centre is
``(16 + 32 posX, 16 + 32 posY)``, so posY = 0 is the top. Shape-local coordinates are

    (X, Y) = (cos t dx - sin t dy, sin t dx + cos t dy) / s,     (dx, dy) = pixel centre - centre,

so the sprite turns counter-clockwise on screen as the orientation t grows, and the scale s
multiplies every length. At s = 1 (lengths in px):

- square: |X| < 9.598 and |Y| < 9.598 (side 0.3 of the canvas);
- ellipse: (X / 12.766)^2 + (Y / 7.2123)^2 < 1 (major axis horizontal at t = 0);
- heart: the classic parametric heart x = 16 sin^3 u, y = 13 cos u - 5 cos 2u - 2 cos 3u - cos 4u
  as a 150-vertex polygon (u = 2 pi k / 150) mapped to X = 0.6 x, Y = -0.66225 y - 1.44
  (lobes up, 19.2 px wide).

Checked against the 320 official frames of ``dsprites.gif`` (deepmind/dsprites-dataset@fa310c6;
docs/provenance.md, "Datasets"). A simpler heart (a rotated square plus two discs) misses about
7.4 px per frame; the curve above was read off the gif's sub-pixel position traversals and
reproduces all 320 frames exactly, as do the square and ellipse, whose sizes were fitted inside
the intervals the gif allows (the half-side must lie in (9.5966, 9.5998], so not 9.6 itself).
Whether the dataset's orientation *index* turns the same way as the gif's traversal is
unverified; the gif's direction is used.

Rendering is vectorised over a batch of factor vectors: every sprite fits a 31 x 31 window around
its centre, computed with broadcasting and pasted into the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import PackedBitsStore, ProceduralStore, packed_row_bytes

IMAGE_SIZE = 64
FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FULL_SIZES = (1, 3, 6, 40, 32, 32)
LATENT_INDICES = (1, 2, 3, 4, 5)
SQUARE, ELLIPSE, HEART = 1, 2, 3
"""Shape values as in the real metadata."""

SQUARE_HALF_SIDE = 9.598
ELLIPSE_SEMI_AXES = (12.766, 7.2123)
HEART_VERTICES = 150
HEART_X_SCALE, HEART_Y_SCALE, HEART_Y_OFFSET = 0.6, 0.66225, -1.44

_WINDOW = 31
_HALF = 15  # the window starts 15 px left of (above) the pixel holding the centre
_PACK_CHUNK = 16384


def full_factor_space() -> FactorSpace:
    """The real dSprites grid: names, sizes and values as in the npz metadata."""
    values = (
        (1.0,),
        (1.0, 2.0, 3.0),
        tuple(np.linspace(0.5, 1.0, 6)),
        tuple(np.linspace(0.0, 2.0 * np.pi, 40)),
        tuple(np.linspace(0.0, 1.0, 32)),
        tuple(np.linspace(0.0, 1.0, 32)),
    )
    return FactorSpace(FACTOR_NAMES, FULL_SIZES, LATENT_INDICES, values)


def heart_polygon() -> np.ndarray:
    """Vertices (150, 2) of the heart at scale 1 in shape-local px (X right, Y down)."""
    u = 2.0 * np.pi * np.arange(HEART_VERTICES) / HEART_VERTICES
    x = 16.0 * np.sin(u) ** 3
    y = 13.0 * np.cos(u) - 5.0 * np.cos(2 * u) - 2.0 * np.cos(3 * u) - np.cos(4 * u)
    return np.stack([HEART_X_SCALE * x, -HEART_Y_SCALE * y + HEART_Y_OFFSET], axis=1)


def _pseudo_angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A cheap monotone stand-in for the polar angle of (x, y), in [0, 4)."""
    denom = np.abs(x) + np.abs(y)
    p = np.divide(y, denom, out=np.zeros_like(denom), where=denom > 0)  # in [-1, 1]
    return np.where(x >= 0, 1.0 + p, 3.0 - p)


def _star_polygon_edges(vertices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pseudo-angles of the vertices (sorted) and the inward half-plane of each edge.

    The polygon must be star-shaped around the origin: then a point with pseudo-angle between
    those of vertices j and j+1 is inside iff it lies on the origin's side of edge j, i.e.
    ``nx[j] * X + ny[j] * Y < d[j]``.
    """
    angles = _pseudo_angle(vertices[:, 0], vertices[:, 1])
    order = np.argsort(angles)
    if np.any(np.diff(angles[order]) <= 0) or not _is_cyclic(order):
        raise ValueError("polygon is not star-shaped around the origin")
    a = vertices[order]
    b = np.roll(a, -1, axis=0)
    nx, ny = a[:, 1] - b[:, 1], b[:, 0] - a[:, 0]
    d = nx * a[:, 0] + ny * a[:, 1]
    flip = np.where(d < 0, -1.0, 1.0)  # orient so that the origin (0 < d) is inside
    return angles[order], nx * flip, ny * flip, d * flip


def _is_cyclic(order: np.ndarray) -> bool:
    """True when sorting by angle keeps the vertices in (cyclically) consecutive order."""
    steps = np.diff(np.r_[order, order[0]]) % len(order)
    return bool(np.all(steps == 1) or np.all(steps == len(order) - 1))


_HEART_ANGLES, _HEART_NX, _HEART_NY, _HEART_D = (
    e.astype(np.float32) for e in _star_polygon_edges(heart_polygon())
)


def _inside_heart(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    edge = np.searchsorted(_HEART_ANGLES, _pseudo_angle(x, y), side="right") - 1  # -1 -> last
    return _HEART_NX[edge] * x + _HEART_NY[edge] * y < _HEART_D[edge]


def render_dsprites(
    shape: np.ndarray,
    scale: np.ndarray,
    orientation: np.ndarray,
    pos_x: np.ndarray,
    pos_y: np.ndarray,
) -> np.ndarray:
    """Render sprites from factor *values* (shape 1/2/3, scale in (0, 1], radians, posX, posY in [0, 1]).

    All arguments are broadcast to one batch of length N.

    Args:
        shape: 1 (square), 2 (ellipse) or 3 (heart).
        scale: length factor in (0, 1].
        orientation: counter-clockwise rotation on screen, radians (2 pi renders as 0).
        pos_x: horizontal position in [0, 1] (0: left).
        pos_y: vertical position in [0, 1] (0: top).

    Returns:
        uint8 (N, 1, 64, 64) with pixels 0 or 255, the store convention for binary images.

    Raises:
        ValueError: a value out of range.
    """
    shape, scale, orientation, pos_x, pos_y = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (shape, scale, orientation, pos_x, pos_y))
    )
    known = np.isin(shape, (SQUARE, ELLIPSE, HEART))
    if not np.all(known):
        bad = np.unique(shape[~known])
        raise ValueError(f"shape values must be 1 (square), 2 (ellipse) or 3 (heart), got {bad}")
    if np.any((scale <= 0) | (scale > 1)):
        raise ValueError("scale must lie in (0, 1]: larger sprites would not fit the render window")
    if np.any((pos_x < 0) | (pos_x > 1) | (pos_y < 0) | (pos_y > 1)):
        raise ValueError("posX and posY must lie in [0, 1]")
    n = shape.shape[0]
    cx, cy = 16.0 + 32.0 * pos_x, 16.0 + 32.0 * pos_y
    x0 = np.floor(cx).astype(np.int64) - _HALF
    y0 = np.floor(cy).astype(np.int64) - _HALF
    offsets = np.arange(_WINDOW) + 0.5
    dx = x0[:, None] + offsets - cx[:, None]  # (N, W) pixel-centre offsets along x
    dy = y0[:, None] + offsets - cy[:, None]  # (N, W) along y
    theta = np.mod(orientation, 2.0 * np.pi)  # 2 pi renders exactly as 0
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale

    def local(sel: np.ndarray, unit_x: float, unit_y: float) -> tuple[np.ndarray, np.ndarray]:
        """Shape-local (X / unit_x, Y / unit_y), (n_sel, W, W) float32, for the selected sprites."""
        c, s = cos[sel, None], sin[sel, None]
        ax, bx = (c * dx[sel]) / unit_x, (-s * dy[sel]) / unit_x
        ay, by = (s * dx[sel]) / unit_y, (c * dy[sel]) / unit_y
        x = bx.astype(np.float32)[:, :, None] + ax.astype(np.float32)[:, None, :]
        y = by.astype(np.float32)[:, :, None] + ay.astype(np.float32)[:, None, :]
        return x, y

    windows = np.zeros((n, _WINDOW, _WINDOW), dtype=bool)
    sel = shape == SQUARE
    if sel.any():
        x, y = local(sel, SQUARE_HALF_SIDE, SQUARE_HALF_SIDE)
        windows[sel] = np.maximum(np.abs(x), np.abs(y)) < 1.0
    sel = shape == ELLIPSE
    if sel.any():
        x, y = local(sel, *ELLIPSE_SEMI_AXES)
        windows[sel] = x * x + y * y < 1.0
    sel = shape == HEART
    if sel.any():
        windows[sel] = _inside_heart(*local(sel, 1.0, 1.0))

    out = np.zeros((n, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    pixels = windows.view(np.uint8) * np.uint8(255)
    for i in range(n):
        out[i, 0, y0[i]:y0[i] + _WINDOW, x0[i]:x0[i] + _WINDOW] = pixels[i]
    return out


class GridRenderer:
    """Renders full factor *indices* of a (possibly reduced) dSprites grid; picklable for workers."""

    def __init__(self, space: FactorSpace) -> None:
        self.values = [np.asarray(v) for v in space.values]

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        return render_dsprites(*(self.values[k][factors[:, k]] for k in range(1, 6)))


def _grid_sizes(sizes: Sequence[int] | None) -> tuple[int, ...]:
    if sizes is None:
        return FULL_SIZES
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) == 5:
        return (1, *sizes)
    if len(sizes) == 6:
        return sizes
    raise ValueError(
        f"dSprites sizes are 5 (shape, scale, orientation, posX, posY) or 6 (with color), got {sizes}"
    )


def dsprites_procedural(
    sizes: Sequence[int] | None = None, cache: Literal["lazy", "packed"] = "lazy"
) -> GroundTruthDataset:
    """Procedural dSprites on the full grid (1, 3, 6, 40, 32, 32) or an evenly reduced one.

    ``sizes`` gives 5 sizes (shape, scale, orientation, posX, posY) or all 6; each factor keeps
    that many levels spread over its full range (``FactorSpace.reduced``). ``cache="lazy"`` renders
    on demand; ``"packed"`` renders the grid once into bit-packed memory (the full grid: about
    20 s on one core and 360 MiB).

    Args:
        sizes: 5 or 6 levels per factor (default: the full grid).
        cache: ``"lazy"`` or ``"packed"``.

    Returns:
        The dataset ``"dsprites_procedural"`` (binary 64x64 images, latent factors 1..5).

    Raises:
        ValueError: wrong ``sizes`` or an unknown ``cache``.
    """
    space, _ = full_factor_space().reduced(_grid_sizes(sizes))
    render = GridRenderer(space)
    if cache == "lazy":
        store = ProceduralStore(
            render, space.index_to_factors, space.size, (1, IMAGE_SIZE, IMAGE_SIZE), binary=True
        )
    elif cache == "packed":
        shape = (1, IMAGE_SIZE, IMAGE_SIZE)
        packed = np.empty((space.size, packed_row_bytes(shape)), dtype=np.uint8)
        for start in range(0, space.size, _PACK_CHUNK):
            index = np.arange(start, min(start + _PACK_CHUNK, space.size))
            images = render(space.index_to_factors(index))
            packed[index] = np.packbits(images.reshape(len(index), -1) != 0, axis=1)
        store = PackedBitsStore(packed, shape)
    else:
        raise ValueError(f"cache must be 'lazy' or 'packed', got {cache!r}")
    return GroundTruthDataset("dsprites_procedural", space, store)
