"""The dSprites variants of Locatello et al. 2019, exactly as disentanglement_lib draws them.

With x the binary sprite (0/1) repeated to 3 channels, every observation gets fresh nuisance
randomness from the passed RNG, in dlib's call order:

- ``color_dsprites``: x * c with one colour c ~ U(0.5, 1)^3 per image (drawn as an (N, 1, 1, 3)
  array); the background stays black.
- ``noisy_dsprites``: min(x + n, 1) with n ~ U(0, 1)^(64 x 64 x 3) per image (drawn as an
  (N, 64, 64, 3) array): sprite pixels become 1, the background uniform noise.
- ``scream_dsprites``: per image, a 64 x 64 crop of the painting at (randint(0, H - 64),
  randint(0, W - 64)) (exclusive upper bounds, as dlib), then u ~ U(0, 1)^3 and
  background = (crop + u) / 2, inverted (1 - background) where x == 1.

dlib works in NHWC and float64; these transforms draw the same arrays in the same order and return
float32 NCHW in [0, 1]. When the painting cannot be had, ``scream_dsprites`` (texture "auto") falls
back, with a warning, to ``procedural_scream_texture``: a fixed smooth texture (orange/red sky over a
blue fjord) that has the painting's thumbnail size but none of its content. The texture used is part
of the dataset's provenance (``texture: painting sha256:<hex>`` or ``texture: procedural``), so such
results say so and a comparable protocol refuses them.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from disent_core.data.dataset import GroundTruthDataset, ObservationTransform
from disent_core.data.factor_space import Rng
from disent_core.data.provenance import PROCEDURAL
from disent_core.data.shapes3d_render import hsv_to_rgb
from disent_core.errors import ConfigError, DataNotFoundError

CROP = 64
SCREAM_SHAPE = (274, 221)
"""(H, W) of dlib's Scream thumbnail, and of the procedural stand-in."""


def _sprite(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) store images -> float32 x in [0, 1], 3 channels (C = 1 is repeated)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (N, 1 or 3, H, W) images, got shape {images.shape}")
    x = images.astype(np.float32) / np.float32(255.0)
    return np.broadcast_to(x, (x.shape[0], 3, *x.shape[2:]))


def _randint(rng: Rng, high: int) -> int:
    """One integer in [0, high), as ``RandomState.randint(0, high)`` or ``Generator.integers``."""
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(0, high))
    return int(rng.integers(0, high))


class ColorTint(ObservationTransform):
    """x * c, c ~ U(low, high)^3 once per image (dlib's ``ColorDSprites``)."""

    out_channels = 3

    def __init__(self, low: float = 0.5, high: float = 1.0) -> None:
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
        self.low, self.high = low, high

    def __call__(self, images: np.ndarray, rng: Rng) -> np.ndarray:
        x = _sprite(images)
        colour = rng.uniform(self.low, self.high, (len(x), 1, 1, 3))  # NHWC, as dlib draws it
        return x * colour.transpose(0, 3, 1, 2).astype(np.float32)


class NoisyBackground(ObservationTransform):
    """min(x + n, 1), n ~ U(0, 1) per pixel and channel (dlib's ``NoisyDSprites``)."""

    out_channels = 3

    def __call__(self, images: np.ndarray, rng: Rng) -> np.ndarray:
        x = _sprite(images)
        n, _, h, w = x.shape
        noise = rng.uniform(0.0, 1.0, (n, h, w, 3)).astype(np.float32).transpose(0, 3, 1, 2)
        return np.minimum(x + noise, np.float32(1.0))


class ScreamBackground(ObservationTransform):
    """A random crop of ``image`` mixed with a random colour, inverted on the sprite.

    ``image`` is (H, W, 3), float in [0, 1] or uint8, with H and W above 64 (dlib's
    ``ScreamDSprites``).
    """

    out_channels = 3

    def __init__(self, image: np.ndarray) -> None:
        image = np.asarray(image)
        if image.dtype == np.uint8:
            image = image.astype(np.float32) / np.float32(255.0)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) <= CROP:
            raise ValueError(f"background image must be (H, W, 3) with H, W > {CROP}, got {image.shape}")
        if not (np.all(image >= 0.0) and np.all(image <= 1.0)):
            raise ValueError("background image values must lie in [0, 1]")
        self._chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)

    @property
    def image(self) -> np.ndarray:
        """The background image, float32 (H, W, 3) in [0, 1]."""
        return self._chw.transpose(1, 2, 0)

    def __call__(self, images: np.ndarray, rng: Rng) -> np.ndarray:
        x = _sprite(images)
        n, _, h, w = x.shape
        if (h, w) != (CROP, CROP):
            raise ValueError(f"scream background expects {CROP}x{CROP} images, got {h}x{w}")
        crop = np.empty((n, 3, CROP, CROP), dtype=np.float32)
        colour = np.empty((n, 3), dtype=np.float32)
        height, width = self._chw.shape[1:]
        for i in range(n):  # dlib's per-image order: row offset, column offset, colour
            row = _randint(rng, height - CROP)
            col = _randint(rng, width - CROP)
            colour[i] = rng.uniform(0.0, 1.0, size=3)
            crop[i] = self._chw[:, row:row + CROP, col:col + CROP]
        background = (crop + colour[:, :, None, None]) / np.float32(2.0)
        return np.where(x == np.float32(1.0), np.float32(1.0) - background, background)


def procedural_scream_texture(seed: int = 0) -> np.ndarray:
    """A smooth stand-in for the Scream thumbnail: float32 (274, 221, 3) in [0, 1].

    An orange/red sky band over a blue fjord band, both in HSV, whose boundary, hues and
    brightness wander with sums of low-frequency sinusoids drawn from ``default_rng(seed)``.

    Args:
        seed: seed of the texture's random waves.

    Returns:
        float32 (274, 221, 3) RGB in [0, 1].
    """
    rng = np.random.default_rng(seed)
    height, width = SCREAM_SHAPE
    y = (np.arange(height)[:, None] + 0.5) / height
    x = (np.arange(width)[None, :] + 0.5) / width

    def waves(amplitude: float, count: int = 6) -> np.ndarray:
        freq = rng.uniform(0.5, 3.0, (count, 2)) * rng.choice([-1.0, 1.0], (count, 2))
        phase = rng.uniform(0.0, 2.0 * np.pi, count)
        weight = rng.uniform(0.5, 1.0, count) * amplitude / count
        terms = zip(weight, freq, phase, strict=True)
        return sum(w * np.sin(2 * np.pi * (f[0] * x + f[1] * y) + p) for w, f, p in terms)

    boundary = 0.45 + 0.5 * waves(0.15)
    fjord = 1.0 / (1.0 + np.exp(-(y - boundary) / 0.03))  # 0 in the sky, 1 in the fjord
    sky = hsv_to_rgb(0.04 + waves(0.05), 0.8 + waves(0.15), 0.9 + waves(0.1))
    water = hsv_to_rgb(0.6 + waves(0.05), 0.6 + waves(0.2), 0.55 + waves(0.15))
    texture = sky * (1.0 - fjord[..., None]) + water * fjord[..., None]
    return np.clip(texture, 0.0, 1.0).astype(np.float32)


def _dsprites(
    source: str, data_root: str | os.PathLike | None, download: bool, **kw: Any
) -> GroundTruthDataset:
    from disent_core.data.dsprites import dsprites_base

    return dsprites_base(source=source, data_root=data_root, download=download, **kw)


def color_dsprites(
    source: str = "real", data_root: str | os.PathLike | None = None, download: bool = True, **kw: Any
) -> GroundTruthDataset:
    """dSprites tinted by a random colour U(0.5, 1)^3 per image (``source``: "real" or "procedural").

    Args:
        source: ``"real"`` or ``"procedural"`` base sprites.
        data_root: the data root of the real data (default: ``data_root()``).
        download: whether the real npz may be downloaded when absent.
        **kw: further ``dsprites_base`` options (procedural ``sizes``, ``cache``).

    Returns:
        The dataset ``"color_dsprites"``: float32 RGB (3, 64, 64) observations in [0, 1].

    Raises:
        ConfigError: as ``dsprites_base`` (an unknown source, options the real data does not take).
        DataError: the real data is missing, corrupt or cannot be downloaded.
    """
    base = _dsprites(source, data_root, download, **kw)
    return replace(base, name="color_dsprites", transform=ColorTint(0.5, 1.0))


def noisy_dsprites(
    source: str = "real", data_root: str | os.PathLike | None = None, download: bool = True, **kw: Any
) -> GroundTruthDataset:
    """dSprites on a uniform-noise background (``source``: "real" or "procedural").

    Args:
        source: ``"real"`` or ``"procedural"`` base sprites.
        data_root: the data root of the real data (default: ``data_root()``).
        download: whether the real npz may be downloaded when absent.
        **kw: further ``dsprites_base`` options (procedural ``sizes``, ``cache``).

    Returns:
        The dataset ``"noisy_dsprites"``: float32 RGB (3, 64, 64) observations in [0, 1].

    Raises:
        ConfigError: as ``dsprites_base`` (an unknown source, options the real data does not take).
        DataError: the real data is missing, corrupt or cannot be downloaded.
    """
    base = _dsprites(source, data_root, download, **kw)
    return replace(base, name="noisy_dsprites", transform=NoisyBackground())


def _scream_image(
    texture: str, data_root: str | os.PathLike | None, download: bool
) -> tuple[np.ndarray, str]:
    """The background image and its provenance label (``painting sha256:<hex>`` or ``procedural``)."""
    if texture == "procedural":
        return procedural_scream_texture(), PROCEDURAL
    from disent_core.data.scream import load_scream_image
    from disent_core.data.sources import get_source

    try:
        image = load_scream_image(data_root, download)
        (record,) = get_source("scream").load_meta(data_root)["files"]
        return image, f"painting sha256:{record['sha256']}"
    except DataNotFoundError as err:
        if texture == "painting":
            raise
        source = get_source("scream")
        spec = source.files[0]
        warnings.warn(
            f"The Scream painting is not available ({str(err).splitlines()[0]}); scream_dsprites "
            f"uses a procedural stand-in texture instead, so results are not comparable with "
            f"papers. To use the painting, download {spec.urls[0]} and place it as "
            f"{source.raw_dir(data_root) / spec.filename}, or pass texture='painting' to make its "
            "absence an error.",
            stacklevel=3,
        )
        return procedural_scream_texture(), PROCEDURAL


def scream_dsprites(
    source: str = "real",
    image: np.ndarray | None = None,
    data_root: str | os.PathLike | None = None,
    download: bool = True,
    texture: Literal["auto", "painting", "procedural"] = "auto",
    **kw: Any,
) -> GroundTruthDataset:
    """dSprites on a crop of The Scream, sprite pixels inverted.

    The background is ``image`` when given (H, W, 3), else by ``texture``: "painting" loads the
    painting (downloading it when allowed) and fails when it cannot; "procedural" uses
    ``procedural_scream_texture``; "auto" tries the painting and falls back to the texture with a
    warning.

    Args:
        source: ``"real"`` or ``"procedural"`` base sprites.
        image: a background (H, W, 3), float in [0, 1] or uint8, H and W > 64; its SHA-256 is
            recorded as the texture.
        data_root: the data root of the real data and the painting (default: ``data_root()``).
        download: whether the npz and the painting may be downloaded when absent.
        texture: ``"auto"``, ``"painting"`` or ``"procedural"`` (only ``"auto"`` with ``image``).
        **kw: further ``dsprites_base`` options (procedural ``sizes``, ``cache``).

    Returns:
        The dataset ``"scream_dsprites"``: float32 RGB (3, 64, 64) observations in [0, 1], its
        provenance naming the texture.

    Raises:
        ConfigError: an unknown ``texture``, both ``image`` and a texture, or a bad base option.
        DataNotFoundError: ``texture="painting"`` and the painting cannot be had.
        ValueError: ``image`` is not (H, W, 3) in [0, 1] with H, W > 64.
    """
    if texture not in ("auto", "painting", "procedural"):
        raise ConfigError(f"texture must be 'auto', 'painting' or 'procedural', got {texture!r}")
    if image is not None and texture != "auto":
        raise ConfigError(f"pass either image= or texture={texture!r}, not both")
    base = _dsprites(source, data_root, download, **kw)
    if image is not None:
        background = np.asarray(image)
        label = f"image sha256:{hashlib.sha256(np.ascontiguousarray(background).tobytes()).hexdigest()}"
    else:
        background, label = _scream_image(texture, data_root, download)
    return replace(base, name="scream_dsprites", transform=ScreamBackground(background),
                   provenance=replace(base.provenance, texture=label))
