"""Real dSprites path on a fixture npz with the original layout: download -> verify -> prepare -> load."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from data_fixtures import spec_for

from disent_core.data import dsprites
from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.registry import get_dataset
from disent_core.data.sources import get_source
from disent_core.data.stores import ArrayStore, PackedBitsStore, packed_row_bytes
from disent_core.errors import ConfigError, DataNotFoundError


def test_fixture_metadata_needs_allow_pickle_and_latin1(dsprites_npz):
    with np.load(dsprites_npz.path) as npz, pytest.raises(ValueError, match="allow_pickle"):
        npz["metadata"]
    with np.load(dsprites_npz.path, allow_pickle=True) as npz, pytest.raises(UnicodeError):
        npz["metadata"]
    with np.load(dsprites_npz.path, allow_pickle=True, encoding="latin1") as npz:
        assert npz["metadata"][()]["latents_names"][1] == "shape"
        assert npz["imgs"].dtype == np.uint8 and npz["imgs"].max() == 1


@pytest.mark.parametrize("via", ["file", "http"])
def test_prepare_and_load_gives_known_images_at_known_factors(dsprites_npz, data_dir, http_server, via):
    url = http_server.url(dsprites_npz.path.name) if via == "http" else None
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path, url=url)])
    dataset = dsprites.dsprites_full(data_root=data_dir, download=False)

    space = dataset.factor_space
    assert space.names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert space.sizes == dsprites_npz.sizes and space.latent_indices == (1, 2, 3, 4, 5)
    for values, expected in zip(space.values, dsprites_npz.values, strict=True):
        np.testing.assert_allclose(values, expected)
    assert dataset.name == "dsprites_full" and dataset.is_binary
    assert isinstance(dataset.store, PackedBitsStore) and dataset.observation_shape == (1, 64, 64)

    full = np.array([[0, 2, 1, 3, 0, 2], [0, 0, 0, 0, 0, 0], [0, 1, 1, 2, 2, 1]])
    index = np.ravel_multi_index(full.T, dsprites_npz.sizes)
    images = dataset.observations_from_full_factors(full, np.random.default_rng(0), as_uint8=True)
    np.testing.assert_array_equal(images[:, 0], dsprites_npz.imgs[index] * 255)
    observed = dataset.sample_observations_from_factors(full[:, 1:], np.random.default_rng(0))
    assert observed.dtype == np.float32
    np.testing.assert_array_equal(observed[:, 0], dsprites_npz.imgs[index].astype(np.float32))
    np.testing.assert_array_equal(dataset[int(index[0])].numpy()[0], dsprites_npz.imgs[index[0]])


def test_conversion_streams_imgs_in_blocks(dsprites_npz, data_dir, monkeypatch):
    monkeypatch.setattr(dsprites, "_BLOCK_ROWS", 7)  # 216 images -> 31 blocks, the last one short
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    store = dsprites.dsprites_full(data_root=data_dir, download=False).store
    everything = store[np.arange(len(store))]
    np.testing.assert_array_equal(everything[:, 0], dsprites_npz.imgs * 255)


def test_noshape_scores_four_factors_and_resamples_shape(dsprites_npz, data_dir):
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    dataset = dsprites.dsprites_noshape(data_root=data_dir, download=False)
    assert dataset.name == "dsprites_noshape" and dataset.factor_space.latent_indices == (2, 3, 4, 5)
    assert dataset.factor_names == ["scale", "orientation", "posX", "posY"]
    full = dataset.factor_space.complete(np.zeros((200, 4), dtype=np.int64), np.random.default_rng(1))
    assert set(full[:, 1]) == {0, 1, 2} and set(full[:, 0]) == {0}


def test_registry_builds_real_dsprites(dsprites_npz, data_dir):
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    assert get_dataset("dsprites_full", data_root=data_dir, download=False).num_factors == 5


def test_packed_store_memory_bound_for_the_full_grid(dsprites_npz, data_dir):
    assert packed_row_bytes((1, 64, 64)) == 512
    full_images = int(np.prod(dsprites.SIZES))
    assert full_images == 737_280 and full_images * 512 <= 400_000_000
    get_source("dsprites").prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    store = dsprites.dsprites_full(data_root=data_dir, download=False).store
    assert store.packed.shape == (len(dsprites_npz.imgs), 512)
    assert store.resident_bytes == len(dsprites_npz.imgs) * 512


def test_real_dsprites_missing_offline(data_dir):
    with pytest.raises(DataNotFoundError, match=r"dsprites_ndarray_co1sh3sc6or40x32y32_64x64\.npz"):
        dsprites.dsprites_full(data_root=data_dir, download=False)


def test_option_errors():
    with pytest.raises(ConfigError, match="'real' or 'procedural'"):
        dsprites.dsprites_full(source="synthetic")
    with pytest.raises(ConfigError, match="sizes, style"):
        dsprites.dsprites_full(source="real", sizes=(1, 3, 2, 2, 2, 2), style=1)


@pytest.fixture
def fake_renderer(monkeypatch):
    """Stands in for dsprites_render (written separately): records its arguments."""
    calls = []

    def dsprites_procedural(sizes=None, **kw):
        calls.append((sizes, kw))
        sizes = sizes or (1, 3, 2, 2, 2, 2)
        space = FactorSpace(dsprites.NAMES, sizes, (1, 2, 3, 4, 5))
        images = np.zeros((space.size, 1, 64, 64), dtype=np.uint8)
        return GroundTruthDataset("dsprites_procedural", space, ArrayStore(images))

    module = types.ModuleType("disent_core.data.dsprites_render")
    module.dsprites_procedural = dsprites_procedural
    monkeypatch.setitem(sys.modules, "disent_core.data.dsprites_render", module)
    return calls


def test_procedural_source_delegates_and_sets_latents(fake_renderer):
    full = dsprites.dsprites_full(source="procedural", sizes=(1, 3, 2, 2, 2, 2), seed=3)
    noshape = dsprites.dsprites_noshape(source="procedural")
    assert fake_renderer == [((1, 3, 2, 2, 2, 2), {"seed": 3}), (None, {})]
    assert full.name == "dsprites_full" and full.factor_space.latent_indices == (1, 2, 3, 4, 5)
    assert noshape.name == "dsprites_noshape" and noshape.factor_space.latent_indices == (2, 3, 4, 5)
    assert dsprites.dsprites_base("procedural").factor_space.names == dsprites.NAMES


def test_procedural_source_with_the_real_renderer():
    pytest.importorskip("disent_core.data.dsprites_render")
    dataset = dsprites.dsprites_noshape(source="procedural", sizes=(3, 2, 2, 2, 2))
    assert dataset.factor_space.sizes == (1, 3, 2, 2, 2, 2) and dataset.num_factors == 4
    images = dataset.sample_observations(4, np.random.default_rng(0), as_uint8=True)
    assert images.shape == (4, 1, 64, 64) and set(np.unique(images)) <= {0, 255}
