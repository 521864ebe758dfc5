"""The source registry and preparation: layout, meta.json, idempotence, atomicity, errors."""

from __future__ import annotations

import json

import pytest
from data_fixtures import sha256_of, spec_for

from disent_core.data import dsprites
from disent_core.data.files import FileSpec
from disent_core.data.sources import SCHEMA_VERSION, get_source, source_names
from disent_core.errors import DataError, DataNotFoundError, UnknownNameError


def test_registry_names_and_published_checksums():
    assert source_names() == ["dsprites", "shapes3d", "smallnorb", "scream"]
    (npz,) = get_source("dsprites").files
    assert npz.md5 == "7da33b31b13a06f4b04a70402ce90c2e" and npz.sha256 is None
    assert any("github.com/deepmind/" in u for u in npz.urls)
    assert any("google-deepmind" in u for u in npz.urls)
    (h5,) = get_source("shapes3d").files
    assert h5.size == 267_573_662 and h5.sha256.startswith("0a0f6ed9") and h5.sha256.endswith("1785")
    norb = get_source("smallnorb").files
    assert len(norb) == 6 and all(f.sha256 and f.size and f.urls[0].endswith(f.filename) for f in norb)
    scream = get_source("scream")
    assert scream.trust_on_first_use and scream.files[0].sha256 is None


def test_unknown_source_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_source("mnist")
    for name in source_names():
        assert name in str(info.value)


def test_layout_under_data_root(data_dir, monkeypatch):
    source = get_source("shapes3d")
    assert source.raw_dir(data_dir) == data_dir.resolve() / "shapes3d" / "raw"
    assert source.cache_dir(data_dir) == data_dir.resolve() / "shapes3d" / "prepared"
    monkeypatch.setenv("DISENT_DATA", str(data_dir))
    assert source.raw_dir() == data_dir.resolve() / "shapes3d" / "raw"


def test_describe_before_anything(data_dir):
    info = get_source("smallnorb").describe(data_dir)
    assert info["status"] == "missing" and not info["cache"]["prepared"]
    assert info["cache"]["bytes_on_disk"] == 0 and len(info["files"]) == 6
    entry = info["files"][0]
    assert entry["present"] is False and entry["urls"] and entry["sha256"] and entry["size"]
    assert entry["path"].startswith(info["raw_dir"])
    json.dumps(info)  # the CLI prints it as JSON


def test_prepare_writes_meta_with_hashes_actually_used(dsprites_npz, data_dir):
    source = get_source("dsprites")
    spec = spec_for(dsprites_npz.path)
    cache = source.prepare(data_dir, files=[spec])
    assert cache == source.cache_dir(data_dir) and source.is_prepared(data_dir)
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION and meta["source"] == "dsprites"
    (record,) = meta["files"]
    assert record["sha256"] == sha256_of(dsprites_npz.path) and record["source"] == spec.urls[0]
    assert meta["outputs"] == {"images_packed.npy": (cache / "images_packed.npy").stat().st_size}
    assert meta["content"]["factors"]["sizes"] == list(dsprites_npz.sizes)
    info = source.describe(data_dir)
    assert info["status"] == "prepared" and info["files"][0]["present"] is True
    assert info["cache"]["bytes_on_disk"] > 0 and info["cache"]["meta"]["source"] == "dsprites"


def test_prepare_twice_does_not_redo_work(dsprites_npz, data_dir, monkeypatch, dead_url):
    source = get_source("dsprites")
    calls = []
    convert = dsprites.convert_dsprites
    monkeypatch.setattr(dsprites, "convert_dsprites", lambda raw, out: calls.append(1) or convert(raw, out))
    source.prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    created = source.read_meta(data_dir)["created"]
    # a second call needs neither the network nor the converter
    source.prepare(data_dir, files=[FileSpec(dsprites_npz.path.name, (dead_url,))])
    assert calls == [1] and source.read_meta(data_dir)["created"] == created
    source.prepare(data_dir, files=[spec_for(dsprites_npz.path)], force=True)
    assert calls == [1, 1]


def test_interrupted_prepare_leaves_no_complete_looking_cache(dsprites_npz, data_dir, monkeypatch):
    source = get_source("dsprites")
    spec = spec_for(dsprites_npz.path)

    def crash(raw, out):
        (out / "images_packed.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(dsprites, "convert_dsprites", crash)
    with pytest.raises(KeyboardInterrupt):
        source.prepare(data_dir, files=[spec])
    source_dir = source.source_dir(data_dir)
    assert not source.is_prepared(data_dir) and not source.cache_dir(data_dir).exists()
    assert sorted(p.name for p in source_dir.iterdir()) == [".lock", "raw"]
    assert sha256_of(source.raw_dir(data_dir) / spec.filename) == spec.sha256  # raw file intact
    assert source.describe(data_dir)["status"] == "downloaded"

    monkeypatch.undo()
    offline = FileSpec(spec.filename, (), size=spec.size, sha256=spec.sha256)
    source.prepare(data_dir, files=[offline], download=False)  # reuses the verified raw file
    assert source.is_prepared(data_dir)


def test_leftovers_of_a_killed_prepare_are_cleaned(dsprites_npz, data_dir):
    source = get_source("dsprites")
    stale = source.source_dir(data_dir) / ".prepared-tmp-killed"
    stale.mkdir(parents=True)
    (stale / "meta.json").write_text("{}")
    source.prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    assert not stale.exists()


def test_damaged_cache_is_rebuilt(dsprites_npz, data_dir):
    source = get_source("dsprites")
    cache = source.prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    with open(cache / "images_packed.npy", "r+b") as f:
        f.truncate(100)
    assert not source.is_prepared(data_dir)
    with pytest.raises(DataError, match="not prepared"):
        source.load_meta(data_dir)
    source.prepare(data_dir, files=[spec_for(dsprites_npz.path)])
    assert source.is_prepared(data_dir)


def test_prepare_offline_without_files_names_url_path_and_checksum(data_dir, dead_url):
    source = get_source("shapes3d")
    (declared,) = source.files
    spec = FileSpec(declared.filename, (dead_url,), declared.size, declared.sha256, declared.md5)
    with pytest.raises(DataNotFoundError) as info:
        source.prepare(data_dir, files=[spec])
    message = str(info.value)
    assert dead_url in message and declared.sha256 in message
    assert str(source.raw_dir(data_dir) / "3dshapes.h5") in message
    assert not source.is_prepared(data_dir)


def test_prepare_with_download_disabled_lists_declared_urls(data_dir):
    source = get_source("dsprites")
    with pytest.raises(DataNotFoundError) as info:
        source.prepare(data_dir, download=False)
    message = str(info.value)
    assert all(url in message for url in source.files[0].urls)
    assert "7da33b31b13a06f4b04a70402ce90c2e" in message and str(source.raw_dir(data_dir)) in message
