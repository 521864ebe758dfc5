"""SmallNORB: the binary-matrix reader and the real path on shuffled fixture files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from data_fixtures import NORB_LEVELS, norb_bytes, spec_for
from PIL import Image

from disent_core.data.registry import get_dataset
from disent_core.data.smallnorb import read_norb_matrix, smallnorb
from disent_core.data.sources import get_source
from disent_core.errors import ConfigError, DataError


def _resized(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))


def test_reader_headers_and_dtypes(tmp_path):
    cat = np.arange(7, dtype="<i4")
    (tmp_path / "cat.mat").write_bytes(norb_bytes(cat))
    assert (tmp_path / "cat.mat").stat().st_size == 20 + 7 * 4  # 1-D files still carry 3 dims
    np.testing.assert_array_equal(read_norb_matrix(tmp_path / "cat.mat"), cat)

    dat = np.random.default_rng(0).integers(0, 256, size=(5, 2, 9, 9), dtype=np.uint8)
    (tmp_path / "dat.mat.gz").write_bytes(gzip.compress(norb_bytes(dat)))
    assert read_norb_matrix(tmp_path / "dat.mat.gz").dtype == np.uint8  # uint8, not int8
    np.testing.assert_array_equal(read_norb_matrix(tmp_path / "dat.mat.gz"), dat)
    np.testing.assert_array_equal(read_norb_matrix(tmp_path / "dat.mat.gz", camera=1), dat[:, 1])


def test_reader_rejects_bad_files(tmp_path):
    (tmp_path / "bad.mat").write_bytes(struct.pack("<iii", 0x12345678, 1, 3) + b"\0" * 20)
    with pytest.raises(DataError, match="magic"):
        read_norb_matrix(tmp_path / "bad.mat")
    (tmp_path / "short.mat").write_bytes(norb_bytes(np.arange(6, dtype="<i4"))[:-4])
    with pytest.raises(DataError, match="truncated"):
        read_norb_matrix(tmp_path / "short.mat")
    with pytest.raises(DataError, match="stereo pairs"):
        read_norb_matrix(tmp_path / "short.mat", camera=0)


@pytest.fixture
def prepared(norb_files, data_dir, http_server):
    specs = [spec_for(p, url=http_server.url(p.name)) for p in norb_files.paths]
    get_source("smallnorb").prepare(data_dir, files=specs)
    return norb_files


def test_all_split_is_sorted_merged_and_resized(prepared, data_dir):
    dataset = smallnorb(data_root=data_dir, download=False)
    space = dataset.factor_space
    assert space.names == ("category", "instance", "elevation", "azimuth", "lighting")
    assert space.sizes == (2, 4, 2, 3, 2) and space.latent_indices == (0, 2, 3, 4)
    assert dataset.factor_names == ["category", "elevation", "azimuth", "lighting"]
    assert space.values[1] == (0, 1, 4, 6)
    assert space.values[2] == (30, 45) and space.values[3] == (0, 20, 340)  # degrees
    assert dataset.observation_shape == (1, 64, 64) and dataset.store.resident_bytes == 0

    images = dataset.store[np.arange(len(dataset))]
    for index, factors in enumerate(space.index_to_factors(np.arange(len(dataset)))):
        key = tuple(int(space.values[k][f]) for k, f in enumerate(factors))
        key = (key[0], key[1], (key[2] - 30) // 5, key[3] // 20, key[4])
        np.testing.assert_array_equal(images[index, 0], _resized(prepared.camera0[key]))
    assert get_dataset("smallnorb", data_root=data_dir, download=False).num_factors == 4


def test_instance_is_a_nuisance_in_the_all_split(prepared, data_dir):
    dataset = smallnorb(data_root=data_dir, download=False)
    full = dataset.factor_space.complete(np.zeros((300, 4), dtype=np.int64), np.random.default_rng(0))
    assert set(full[:, 1]) == {0, 1, 2, 3}
    assert dataset.sample_observations_from_factors(np.zeros((3, 4), dtype=np.int64),
                                                    np.random.default_rng(0)).shape == (3, 1, 64, 64)


@pytest.mark.parametrize("split", ["train", "test"])
def test_train_and_test_splits_keep_their_instances_as_a_factor(prepared, data_dir, split):
    dataset = smallnorb(data_root=data_dir, download=False, split=split)
    instances = NORB_LEVELS[f"{split}_instances"]
    space = dataset.factor_space
    assert dataset.name == f"smallnorb_{split}" and space.latent_indices == tuple(range(5))
    assert space.sizes == (2, 2, 2, 3, 2) and space.values[1] == tuple(instances)
    factors = np.array([[1, 1, 0, 2, 1]])
    image = dataset.observations_from_full_factors(factors, np.random.default_rng(0), as_uint8=True)
    np.testing.assert_array_equal(image[0, 0], _resized(prepared.camera0[(1, instances[1], 0, 17, 5)]))


def test_bad_split(prepared, data_dir):
    with pytest.raises(ConfigError, match="split"):
        smallnorb(data_root=data_dir, download=False, split="validation")
