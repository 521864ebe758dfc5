"""The Scream: thumbnail as dlib, trust on first use, pinned hash, unavailable -> DataNotFoundError."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from data_fixtures import sha256_of, write_scream_jpeg
from PIL import Image

from disent_core.data.files import FileSpec
from disent_core.data.scream import load_scream_image
from disent_core.data.sources import get_source
from disent_core.errors import ChecksumError, DataNotFoundError


def _first_use(jpeg, data_dir, url=None):
    """Prepare as a first download would: the declared spec (no hash) with a fixture URL."""
    get_source("scream").prepare(data_dir, files=[FileSpec("The_Scream.jpg", (url or jpeg.as_uri(),))])


def test_image_is_the_lanczos_thumbnail_in_unit_range(scream_jpeg, data_dir, http_server):
    _first_use(scream_jpeg, data_dir, http_server.url("The_Scream.jpg"))
    image = load_scream_image(data_root=data_dir, download=False)
    with Image.open(scream_jpeg) as expected:
        expected = expected.convert("RGB")
        expected.thumbnail((350, 274), Image.Resampling.LANCZOS)
    assert image.dtype == np.float32 and image.shape == (274, 216, 3)
    assert 0.0 <= image.min() and image.max() <= 1.0
    np.testing.assert_allclose(image, np.asarray(expected) / 255.0, atol=1e-6)


def test_first_use_hash_is_recorded_and_required_afterwards(scream_jpeg, data_dir):
    source = get_source("scream")
    _first_use(scream_jpeg, data_dir)
    (record,) = source.read_meta(data_dir)["files"]
    assert record["sha256"] == sha256_of(scream_jpeg)

    # Wikimedia revises the file: a rebuilt cache refuses the new copy and moves it aside
    raw = source.raw_dir(data_dir) / "The_Scream.jpg"
    write_scream_jpeg(raw, seed=1)
    revised = hashlib.sha256(raw.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match=record["sha256"]):
        source.prepare(data_dir, download=False, force=True)
    (bad,) = raw.parent.glob("The_Scream.jpg.bad-*")
    assert sha256_of(bad) == revised and source.is_prepared(data_dir)  # old cache still valid

    # pinning the new hash explicitly accepts it
    bad.rename(raw)
    image = load_scream_image(data_root=data_dir, download=False, sha256=revised)
    assert source.read_meta(data_dir)["files"][0]["sha256"] == revised and image.shape[2] == 3


def test_unavailable_raises_data_not_found(data_dir):
    with pytest.raises(DataNotFoundError) as info:
        load_scream_image(data_root=data_dir, download=False)
    assert "upload.wikimedia.org" in str(info.value)
    assert str(get_source("scream").raw_dir(data_dir)) in str(info.value)
