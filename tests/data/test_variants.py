"""The colour, noisy and scream dSprites variants: dlib's formulas, RNG order and determinism."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

from disent_core.data.registry import get_dataset
from disent_core.data.variants import (
    ColorTint,
    NoisyBackground,
    ScreamBackground,
    color_dsprites,
    procedural_scream_texture,
    scream_dsprites,
)
from disent_core.errors import ConfigError, DataNotFoundError

SIZES = (3, 2, 4, 4, 4)


@pytest.fixture(scope="module")
def sprites() -> np.ndarray:
    """uint8 (N, 1, 64, 64) procedural sprites in {0, 255}, every shape and position of SIZES."""
    base = get_dataset("dsprites_full", source="procedural", sizes=SIZES)
    return base.store[np.arange(0, len(base), 7)]


VARIANTS = {"color_dsprites": {}, "noisy_dsprites": {}, "scream_dsprites": {"texture": "procedural"}}


def _variant(name: str):
    """A variant over procedural dSprites, built through the registry."""
    return get_dataset(name, source="procedural", sizes=SIZES, **VARIANTS[name])


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_keep_the_grid_and_return_float_rgb_in_unit_range(name):
    ds = _variant(name)
    assert ds.name == name
    assert ds.factor_space.sizes == (1, *SIZES) and ds.factor_space.latent_indices == (1, 2, 3, 4, 5)
    assert ds.observation_shape == (3, 64, 64) and not ds.is_binary
    factors, obs = ds.sample(32, np.random.default_rng(0))
    assert factors.shape == (32, 5)
    assert obs.dtype == np.float32 and obs.shape == (32, 3, 64, 64)
    assert obs.min() >= 0.0 and obs.max() <= 1.0
    # random colours and noise: the engine must not reuse one grid point's code for another draw
    assert not ds.observations_are_deterministic
    assert get_dataset("dsprites_full", source="procedural", sizes=SIZES).observations_are_deterministic


def test_variants_carry_their_transforms():
    assert isinstance(_variant("color_dsprites").transform, ColorTint)
    assert isinstance(_variant("noisy_dsprites").transform, NoisyBackground)
    assert isinstance(_variant("scream_dsprites").transform, ScreamBackground)


def test_color_tints_each_sprite_with_one_colour_and_keeps_the_background_black(sprites):
    obs = ColorTint()(sprites, np.random.default_rng(1))
    sprite = np.broadcast_to(sprites > 0, obs.shape)
    assert np.all(obs[~sprite] == 0.0)
    colours = obs.max(axis=(2, 3))  # (N, 3)
    assert np.all((colours >= 0.5) & (colours <= 1.0))
    np.testing.assert_array_equal(obs, (sprites > 0) * colours[:, :, None, None])
    assert len(np.unique(colours, axis=0)) == len(colours)
    # dlib draws uniform(0.5, 1, [N, 1, 1, 3])
    expected = np.random.default_rng(1).uniform(0.5, 1.0, (len(sprites), 1, 1, 3))[:, 0, 0, :]
    np.testing.assert_allclose(colours, expected, rtol=1e-6)


def test_noise_whitens_the_sprite_and_fills_the_background_uniformly(sprites):
    obs = NoisyBackground()(sprites, np.random.RandomState(2))
    sprite = np.broadcast_to(sprites > 0, obs.shape)
    assert np.all(obs[sprite] == 1.0)
    background = obs[~sprite]
    assert background.min() >= 0.0 and background.max() < 1.0
    assert background.mean() == pytest.approx(0.5, abs=0.01)
    assert background.std() == pytest.approx(np.sqrt(1 / 12), abs=0.01)
    # dlib draws uniform(0, 1, [N, 64, 64, 3])
    noise = np.random.RandomState(2).uniform(0, 1, (len(sprites), 64, 64, 3)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(background, noise[~sprite], rtol=1e-6)


def _dlib_scream(sprites: np.ndarray, image: np.ndarray, rng) -> np.ndarray:
    """dlib's ScreamDSprites loop, in NHWC float64, returned as NCHW."""
    observations = np.repeat(sprites.transpose(0, 2, 3, 1) / 255.0, 3, axis=3)
    for i in range(observations.shape[0]):
        if isinstance(rng, np.random.RandomState):
            x_crop = rng.randint(0, image.shape[0] - 64)
            y_crop = rng.randint(0, image.shape[1] - 64)
        else:
            x_crop = rng.integers(0, image.shape[0] - 64)
            y_crop = rng.integers(0, image.shape[1] - 64)
        background = (image[x_crop:x_crop + 64, y_crop:y_crop + 64] + rng.uniform(0, 1, size=3)) / 2.0
        mask = observations[i] == 1
        background[mask] = 1 - background[mask]
        observations[i] = background
    return observations.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("make_rng", [np.random.default_rng, np.random.RandomState])
def test_scream_crops_mixes_and_inverts_exactly_as_dlib(sprites, make_rng):
    image = np.random.default_rng(3).uniform(0, 1, (90, 80, 3))
    obs = ScreamBackground(image)(sprites, make_rng(4))
    np.testing.assert_allclose(obs, _dlib_scream(sprites, image, make_rng(4)), atol=1e-6)
    # the inversion sits exactly on the sprite mask: the background formula there is 1 - obs
    sprite = np.broadcast_to(sprites == 255, obs.shape)
    background = _dlib_scream(np.zeros_like(sprites), image, make_rng(4))
    np.testing.assert_allclose(obs[sprite], 1 - background[sprite], atol=1e-6)
    np.testing.assert_allclose(obs[~sprite], background[~sprite], atol=1e-6)


def test_scream_crop_offsets_exclude_the_last_position():
    # an image one pixel larger than the crop in each direction: randint(0, 1) is always 0
    image = np.zeros((65, 65, 3))
    image[0, :] = image[:, 0] = 1.0
    blank = np.zeros((200, 1, 64, 64), dtype=np.uint8)
    obs = ScreamBackground(image)(blank, np.random.default_rng(5))
    colour = 2 * obs[:, :, 1, 1]
    np.testing.assert_allclose(2 * obs[:, :, 0, 0] - colour, 1.0, atol=1e-6)  # row/col 0 kept
    with pytest.raises(ValueError):
        ScreamBackground(np.zeros((64, 100, 3)))


@pytest.mark.parametrize("name", VARIANTS)
def test_same_seed_same_observations(name):
    ds = _variant(name)
    for make_rng in (np.random.default_rng, np.random.RandomState):
        a = ds.sample(16, make_rng(11))
        b = ds.sample(16, make_rng(11))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    c = ds.sample(16, np.random.default_rng(12))[1]
    assert not np.array_equal(ds.sample(16, np.random.default_rng(11))[1], c)
    clone = pickle.loads(pickle.dumps(ds))  # as a spawned DataLoader worker gets it
    np.testing.assert_array_equal(clone.sample(16, np.random.default_rng(12))[1], c)


def test_per_item_observations_depend_only_on_the_index():
    ds = color_dsprites(source="procedural", sizes=SIZES)
    again = color_dsprites(source="procedural", sizes=SIZES)
    first = [ds[i] for i in (5, 17, 5)]
    assert first[0].dtype.is_floating_point and tuple(first[0].shape) == (3, 64, 64)
    assert first[0].equal(first[2]) and first[0].equal(again[5])
    assert first[1].equal(again[17])
    # the same grid point with another item seed gets another colour
    other = color_dsprites(source="procedural", sizes=SIZES)
    other.item_seed = 1
    assert not other[5].equal(first[0])


def test_scream_falls_back_to_the_procedural_texture_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="procedural stand-in") as record:
        ds = scream_dsprites(source="procedural", sizes=SIZES, data_root=tmp_path, download=False)
    message = str(record[0].message)
    assert "The_Scream.jpg" in message and str(tmp_path) in message
    np.testing.assert_array_equal(ds.transform.image, procedural_scream_texture())
    with pytest.raises(DataNotFoundError):
        scream_dsprites(source="procedural", sizes=SIZES, data_root=tmp_path, download=False,
                        texture="painting")


def test_scream_uses_a_given_image_without_looking_for_the_painting(tmp_path):
    image = np.full((100, 100, 3), 51, dtype=np.uint8)  # 0.2 everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = scream_dsprites(source="procedural", sizes=SIZES, image=image, data_root=tmp_path,
                             download=False)
    obs = ds.sample_observations(8, np.random.default_rng(0))
    assert obs.min() >= 0.1 - 1e-6 and obs.max() <= 0.9 + 1e-6  # (0.2 + u)/2 and its inverse
    with pytest.raises(ConfigError):
        scream_dsprites(source="procedural", sizes=SIZES, image=image, texture="procedural")
    with pytest.raises(ConfigError):
        scream_dsprites(source="procedural", sizes=SIZES, texture="munch")


def test_procedural_texture_has_a_warm_sky_over_a_blue_fjord():
    texture = procedural_scream_texture()
    assert texture.shape == (274, 221, 3) and texture.dtype == np.float32
    assert texture.min() >= 0.0 and texture.max() <= 1.0
    np.testing.assert_array_equal(texture, procedural_scream_texture(0))
    assert not np.array_equal(texture, procedural_scream_texture(1))
    sky, fjord = texture[:60].reshape(-1, 3).mean(0), texture[-60:].reshape(-1, 3).mean(0)
    assert sky[0] > sky[1] > sky[2]  # orange/red
    assert fjord[2] > fjord[0]  # blue
    # smooth: neighbouring pixels differ little
    assert np.abs(np.diff(texture, axis=0)).max() < 0.1 and np.abs(np.diff(texture, axis=1)).max() < 0.1
