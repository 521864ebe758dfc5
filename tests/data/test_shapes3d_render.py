"""The procedural 3DShapes stand-in: grid, dtypes, and a visible effect of every factor."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from disent_core.data.registry import get_dataset
from disent_core.data.shapes3d_render import (
    FACTOR_NAMES,
    FULL_SIZES,
    hsv_to_rgb,
    render_shapes3d,
    shapes3d_procedural,
)


def test_full_grid_has_the_real_names_sizes_and_values():
    ds = get_dataset("shapes3d_procedural")
    space = ds.factor_space
    assert ds.name == "shapes3d_procedural" and len(ds) == 480_000
    assert space.names == FACTOR_NAMES == (
        "floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"
    )
    assert space.sizes == FULL_SIZES == (10, 10, 10, 8, 4, 15)
    assert space.latent_indices == (0, 1, 2, 3, 4, 5)
    for k in range(3):
        np.testing.assert_allclose(space.values[k], np.arange(10) / 10)
    np.testing.assert_allclose(space.values[3], np.linspace(0.75, 1.25, 8))
    assert space.values[4] == (0.0, 1.0, 2.0, 3.0)
    np.testing.assert_allclose(space.values[5], np.linspace(-30, 30, 15))
    images = ds.store[np.array([0, 12_345, 479_999])]
    assert images.dtype == np.uint8 and images.shape == (3, 3, 64, 64)
    assert ds.observation_shape == (3, 64, 64) and not ds.is_binary
    obs = ds.sample_observations(4, np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (4, 3, 64, 64) and 0 <= obs.min() <= obs.max() <= 1


@pytest.mark.parametrize("factor", range(6))
def test_every_factor_changes_the_image(factor):
    ds = shapes3d_procedural()
    space = ds.factor_space
    rng = np.random.default_rng(factor)
    for base in space.sample_all_factors(4, rng):
        sweep = np.repeat(base[None], space.sizes[factor], axis=0)
        sweep[:, factor] = np.arange(space.sizes[factor])
        images = ds.store[space.factors_to_index(sweep)].reshape(len(sweep), -1)
        assert len(np.unique(images, axis=0)) == len(sweep), (FACTOR_NAMES[factor], base)


def test_reduced_grid_images_are_distinct_and_keep_the_ranges():
    ds = shapes3d_procedural((2, 2, 2, 2, 4, 3))
    space = ds.factor_space
    assert len(ds) == 192
    assert space.values[0] == (0.0, 0.9) and space.values[3] == (0.75, 1.25)
    assert space.values[5] == (-30.0, 0.0, 30.0)
    images = ds.store[np.arange(len(ds))].reshape(len(ds), -1)
    assert len(np.unique(images, axis=0)) == len(ds)
    with pytest.raises(ValueError):
        shapes3d_procedural((2, 2, 2, 2, 4))
    clone = pickle.loads(pickle.dumps(ds))  # spawned DataLoader workers receive a pickle
    np.testing.assert_array_equal(clone.store[np.arange(len(ds))].reshape(len(ds), -1), images)


def test_scene_layout_sky_wall_floor_and_a_centred_object():
    image = render_shapes3d(0.0, 0.3, 0.6, 1.0, 2, 0.0)[0].astype(int)  # a sphere
    sky, wall, floor = image[:, 2, 2], image[:, 20, 2], image[:, 60, 2]
    assert sky[2] > sky[0]  # light blue
    np.testing.assert_array_equal(wall, np.rint(hsv_to_rgb(0.3, 0.8, 0.9) * 255))
    assert floor[0] > floor[1] and floor[0] > floor[2]  # red floor (hue 0)
    centre = image[:, 45, 31]
    np.testing.assert_array_equal(centre, np.rint(hsv_to_rgb(0.6, 0.8, 0.9) * 255))
    big, small = (
        (render_shapes3d(0.0, 0.3, 0.6, s, 0, 0.0)[0] == centre[:, None, None]).all(0).sum()
        for s in (1.25, 0.75)
    )
    assert big > small


def test_hsv_to_rgb_matches_the_primary_colours():
    np.testing.assert_allclose(hsv_to_rgb(np.array([0.0, 1 / 3, 2 / 3]), 1.0, 1.0), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(hsv_to_rgb(0.5, 0.0, 0.4), [0.4, 0.4, 0.4])
