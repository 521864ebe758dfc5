import numpy as np
import pytest

from disent_core.data.factor_space import FactorSpace


@pytest.fixture
def space():
    return FactorSpace(("color", "shape", "scale", "x"), (1, 3, 4, 5), latent_indices=(1, 2, 3))


def test_bases_are_c_order(space):
    assert space.bases == (60, 20, 5, 1)
    assert space.size == 60
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in space.sizes], indexing="ij"), -1).reshape(-1, 4)
    np.testing.assert_array_equal(space.factors_to_index(grid), np.arange(60))
    np.testing.assert_array_equal(space.index_to_factors(np.arange(60)), grid)
    np.testing.assert_array_equal(
        space.factors_to_index(grid), np.ravel_multi_index(grid.T, space.sizes)
    )


def test_latent_and_nuisance_split(space):
    assert space.nuisance_indices == (0,)
    assert space.latent_names == ("shape", "scale", "x")
    rng = np.random.default_rng(0)
    latent = space.sample_factors(1000, rng)
    assert latent.shape == (1000, 3)
    full = space.complete(latent, rng)
    np.testing.assert_array_equal(full[:, 1:], latent)
    assert (full[:, 0] == 0).all()


def test_nuisance_factor_is_resampled():
    space = FactorSpace(("a", "b"), (4, 6), latent_indices=(0,))
    full = space.complete(np.zeros((3000, 1), dtype=np.int64), np.random.default_rng(1))
    counts = np.bincount(full[:, 1], minlength=6)
    assert counts.min() > 400  # uniform: ~500 each


def test_sampling_is_uniform_and_seeded(space):
    a = space.sample_factors(60000, np.random.default_rng(5))
    b = space.sample_factors(60000, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    for k, size in enumerate(space.latent_sizes):
        freq = np.bincount(a[:, k], minlength=size) / len(a)
        np.testing.assert_allclose(freq, 1 / size, atol=0.01)
    c = space.sample_factors(100, np.random.default_rng(6))
    assert not np.array_equal(a[:100], c)


def test_random_state_is_accepted_for_dlib_compatibility(space):
    a = space.sample_factors(10, np.random.RandomState(0))
    b = space.sample_factors(10, np.random.RandomState(0))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="Generator or RandomState"):
        space.sample_factors(10, 0)


def test_random_state_draws_dlibs_numbers():
    """dlib's SplitDiscreteStateSpace draws one factor column at a time: latent factors in order,
    then each nuisance factor; a RandomState with dlib's seed gives dlib's factors."""
    split = FactorSpace(("instance", "elevation", "azimuth"), (5, 9, 18), latent_indices=(1, 2))
    rng = np.random.RandomState(3)
    latent = split.sample_factors(40, rng)
    full = split.complete(latent, rng)
    dlib = np.random.RandomState(3)
    dlib_latent = np.stack([dlib.randint(9, size=40), dlib.randint(18, size=40)], axis=1)
    np.testing.assert_array_equal(latent, dlib_latent)
    np.testing.assert_array_equal(full[:, 1:], dlib_latent)
    np.testing.assert_array_equal(full[:, 0], dlib.randint(5, size=40))


def test_traversal(space):
    trav = space.traversal(2, [1, 2, 3])
    np.testing.assert_array_equal(trav[:, 2], np.arange(5))
    assert (trav[:, :2] == [1, 2]).all()


def test_values_and_reduced_grid():
    space = FactorSpace(("s", "t"), (6, 40), values=(np.linspace(0.5, 1, 6), np.linspace(0, 6.28, 40)))
    small, keep = space.reduced((2, 5))
    assert small.sizes == (2, 5)
    assert small.values[0] == (0.5, 1.0)
    assert small.values[1][0] == 0.0 and small.values[1][-1] == pytest.approx(6.28)
    np.testing.assert_array_equal(keep[0], [0, 5])
    np.testing.assert_allclose(space.factor_values(np.array([[5, 0]])), [[1.0, 0.0]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(names=("a",), sizes=(1, 2)), "1 factor names but 2 sizes"),
        (dict(names=("a", "a"), sizes=(1, 2)), "unique"),
        (dict(names=("a",), sizes=(0,)), ">= 1"),
        (dict(names=("a",), sizes=(2,), latent_indices=(1,)), "latent_indices"),
    ],
)
def test_invalid_spaces_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FactorSpace(**kwargs)


def test_out_of_range_factors_are_rejected(space):
    with pytest.raises(ValueError, match="out of range"):
        space.factors_to_index(np.array([[0, 3, 0, 0]]))
    with pytest.raises(ValueError, match="indices must lie"):
        space.index_to_factors(np.array([60]))
