"""Real 3DShapes path on a gzip'd, chunked fixture h5 with the original layout."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import spec_for, write_shapes3d_h5

from disent_core.data import shapes3d as shapes3d_module
from disent_core.data.registry import get_dataset
from disent_core.data.shapes3d import labels_to_classes, shapes3d
from disent_core.data.sources import get_source
from disent_core.data.stores import NpyMemmapStore
from disent_core.errors import DataError


def test_labels_to_classes_ranks_float_values():
    labels = np.array([[0.9, -30.0], [0.1, 30.0], [0.1 + 1e-12, 0.0]])
    classes, values = labels_to_classes(labels)
    np.testing.assert_array_equal(classes, [[1, 0], [0, 2], [0, 1]])
    assert values == [[0.1, 0.9], [-30.0, 0.0, 30.0]]


def test_prepare_and_load_gives_known_images_at_known_factors(
    shapes3d_h5, data_dir, http_server, monkeypatch
):
    monkeypatch.setattr(shapes3d_module, "_BLOCK_ROWS", 16)  # chunk rows 10 -> blocks of 10, last short
    url = http_server.url("3dshapes.h5")
    get_source("shapes3d").prepare(data_dir, files=[spec_for(shapes3d_h5.path, url=url)])
    dataset = shapes3d(data_root=data_dir, download=False)

    space = dataset.factor_space
    assert space.names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert space.sizes == shapes3d_h5.sizes and space.latent_indices == tuple(range(6))
    for values, expected in zip(space.values, shapes3d_h5.values, strict=True):
        np.testing.assert_allclose(values, expected)
    assert isinstance(dataset.store, NpyMemmapStore) and dataset.store.resident_bytes == 0
    assert dataset.observation_shape == (3, 64, 64)

    everything = dataset.store[np.arange(len(dataset))]
    np.testing.assert_array_equal(everything, shapes3d_h5.images.transpose(0, 3, 1, 2))
    factors = np.array([[1, 0, 1, 1, 0, 2], [0, 1, 0, 0, 1, 1]])
    index = np.ravel_multi_index(factors.T, shapes3d_h5.sizes)
    observed = dataset.sample_observations_from_factors(factors, np.random.default_rng(0), as_uint8=True)
    np.testing.assert_array_equal(observed, shapes3d_h5.images[index].transpose(0, 3, 1, 2))
    assert get_dataset("shapes3d", data_root=data_dir, download=False).num_factors == 6


def test_cache_is_uint8_npy_never_float(shapes3d_h5, data_dir):
    cache = get_source("shapes3d").prepare(data_dir, files=[spec_for(shapes3d_h5.path)])
    images = np.load(cache / "images.npy", mmap_mode="r")
    assert images.dtype == np.uint8 and images.shape == (96, 3, 64, 64)


def test_rows_out_of_order_are_rejected(upstream_dir, data_dir):
    fixture = write_shapes3d_h5(upstream_dir / "3dshapes.h5", shuffle=True)
    source = get_source("shapes3d")
    with pytest.raises(DataError, match="not a full C-order grid"):
        source.prepare(data_dir, files=[spec_for(fixture.path)])
    assert not source.is_prepared(data_dir) and not source.cache_dir(data_dir).exists()
