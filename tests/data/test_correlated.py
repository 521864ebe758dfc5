"""DEFT's correlated-factor dataset: grid, rendering, and where the correlation shows up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from disent_core.data import correlated
from disent_core.data.correlated import (
    CorrelatedFactorSpace,
    bin_centres,
    orientation_bin,
    position_angle,
    render_triangles,
)
from disent_core.data.registry import get_dataset, get_entry
from disent_core.data.stream import TrainingStream


@pytest.fixture(scope="module")
def dataset():
    return get_dataset("dsprites_correlated")


def alignment(factors: np.ndarray) -> float:
    """Mean cos(orientation - angle of the position): ~exp(-sigma^2 / 2) if correlated, ~0 if not."""
    return float(np.cos(bin_centres()[factors[:, 0]] - position_angle(factors[:, 1], factors[:, 2])).mean())


def test_registered_grid_and_images(dataset) -> None:
    assert get_entry("dsprites_correlated").kind == "procedural"
    assert dataset.factor_names == ["orientation", "posX", "posY"]
    assert dataset.factors_num_values == [32, 32, 32] and len(dataset) == 32**3
    assert dataset.observation_shape == (1, 64, 64) and dataset.is_binary
    factors = np.array([[0, 0, 0], [31, 31, 31]])
    images = dataset.sample_observations_from_factors(factors, np.random.default_rng(0))
    assert set(np.unique(images)) == {0.0, 1.0}
    area = images.reshape(2, -1).sum(1)
    assert np.all((area > 25) & (area < 45))  # an isosceles triangle of circumradius 5.5 px


def test_triangle_position_and_direction() -> None:
    for theta in (0.0, np.pi / 2, 2.5):
        image = render_triangles(theta, 10, 20)[0, 0].astype(float)
        rows, cols = np.nonzero(image)
        assert abs(cols.mean() - (16 + 10 + 0.5)) < 2 and abs(rows.mean() - (16 + 20 + 0.5)) < 2
        tip = np.array([np.cos(theta), np.sin(theta)])
        spread = np.stack([cols - cols.mean(), rows - rows.mean()], axis=1) @ tip
        assert spread.max() > -spread.min()  # the tip sticks out further along theta
    assert not np.array_equal(render_triangles(0.0, 5, 5), render_triangles(2 * np.pi / 3, 5, 5))


def test_orientation_bins_cover_the_circle() -> None:
    centres = bin_centres()
    assert np.array_equal(orientation_bin(centres), np.arange(32))
    assert np.array_equal(orientation_bin(centres + 2 * np.pi), np.arange(32))
    assert orientation_bin(np.array([np.pi]))[0] == 0


def test_sample_factors_are_correlated(dataset) -> None:
    factors = dataset.sample_factors(20_000, np.random.default_rng(0))
    assert factors.shape == (20_000, 3)
    assert 0.65 < alignment(factors) < 0.8  # exp(-(pi/4)^2 / 2) = 0.73 for 45 degrees of noise
    for k in (1, 2):
        counts = np.bincount(factors[:, k], minlength=32)
        assert counts.min() > 0.8 * counts.mean()  # positions stay uniform
    assert dataset.sample_factors(5, np.random.RandomState(0)).shape == (5, 3)


def test_noise_and_uniform_sampling_options() -> None:
    rng = np.random.default_rng(1)
    exact = get_dataset("dsprites_correlated", noise_deg=0).sample_factors(5000, rng)
    assert alignment(exact) > 0.98
    uniform = get_dataset("dsprites_correlated", sampling="uniform")
    assert abs(alignment(uniform.sample_factors(20_000, rng))) < 0.05
    with pytest.raises(ValueError):
        get_dataset("dsprites_correlated", sampling="independent")


def test_training_stream_and_metric_sampling_see_the_correlation(dataset) -> None:
    """The stream draws sample_all_factors; metrics draw dataset.sample_factors (documented)."""
    space = dataset.factor_space
    assert isinstance(space, CorrelatedFactorSpace)
    assert 0.65 < alignment(space.sample_all_factors(20_000, np.random.default_rng(2))) < 0.8
    batch = TrainingStream(dataset, 8, seed=0, prefetch=0).batch(0)
    assert batch.shape == (8, 1, 64, 64) and batch.dtype == torch.uint8
    full = dataset[space.size - 1]  # the canonical grid (full-dataset evaluation) is uncorrelated
    assert full.shape == (1, 64, 64)
    assert "the metrics" in correlated.__doc__ and "sample_factors" in correlated.__doc__
