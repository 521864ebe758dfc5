"""FileSpec verification and fetch: file:// and local HTTP, mirrors, resume, retries, bad files set aside."""

from __future__ import annotations

import hashlib
import logging

import pytest
from data_fixtures import sha256_of, spec_for

from disent_core.data.files import FileSpec, check_file, fetch, hash_file, move_aside
from disent_core.errors import ChecksumError, DataNotFoundError

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes: spans several copy chunks


@pytest.fixture
def upstream(upstream_dir):
    path = upstream_dir / "payload.bin"
    path.write_bytes(PAYLOAD)
    return path


def _leftovers(directory, name):
    return sorted(p.name for p in directory.iterdir() if p.name != name)


def test_filespec_validates_digests_and_names():
    with pytest.raises(ValueError, match="64 hex digits"):
        FileSpec("a.bin", ("file:///x",), sha256="abc")
    with pytest.raises(ValueError, match="bare file name"):
        FileSpec("dir/a.bin", ("file:///x",))
    with pytest.raises(ValueError, match="sha256:<hex>"):
        FileSpec("a.bin", ("file:///x",), accepted_hashes=("0" * 32,))
    spec = FileSpec("a.bin", ["file:///x"], md5="A" * 32)
    assert spec.md5 == "a" * 32 and spec.urls == ("file:///x",)
    assert spec.expected_digests == (("md5", "a" * 32),)


def test_hash_file_matches_hashlib(upstream):
    digests = hash_file(upstream)
    assert digests["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert digests["md5"] == hashlib.md5(PAYLOAD).hexdigest()


def test_check_file_prefers_sha256_and_accepts_alternatives(upstream):
    good_md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert check_file(upstream, FileSpec("p", (), md5=good_md5))[0] is None
    problem, _ = check_file(upstream, FileSpec("p", (), sha256="0" * 64, md5=good_md5))
    assert "checksum mismatch" in problem  # SHA-256 is the authority when both are published
    spec = FileSpec("p", (), md5="0" * 32, accepted_hashes=(f"sha256:{sha256_of(upstream)}",))
    assert check_file(upstream, spec)[0] is None
    problem, digests = check_file(upstream, FileSpec("p", (), size=1, sha256="0" * 64))
    assert "size is 1,024,000 bytes, expected 1" in problem and digests == {}


def test_fetch_file_url(upstream, tmp_path):
    raw = tmp_path / "raw"
    record = fetch(spec_for(upstream), raw)
    assert record.path == raw / "payload.bin" and record.path.read_bytes() == PAYLOAD
    assert record.source == upstream.as_uri() and record.sha256 == sha256_of(upstream)
    assert _leftovers(raw, "payload.bin") == []


def test_fetch_uses_verified_local_copy_without_network(upstream, tmp_path, dead_url):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "payload.bin").write_bytes(PAYLOAD)
    record = fetch(spec_for(upstream, url=dead_url), raw, download=False)
    assert record.source == "local" and record.size == len(PAYLOAD)


def test_missing_and_unreachable_raises_data_not_found(upstream, tmp_path, dead_url):
    raw = tmp_path / "raw"
    missing_uri = (tmp_path / "nowhere" / "payload.bin").as_uri()
    spec = FileSpec("payload.bin", (dead_url, missing_uri), size=len(PAYLOAD), sha256=sha256_of(upstream))
    with pytest.raises(DataNotFoundError) as info:
        fetch(spec, raw)
    message = str(info.value)
    for expected in (dead_url, missing_uri, str(raw / "payload.bin"), spec.sha256, "1,024,000", str(raw)):
        assert expected in message
    assert "by hand" in message
    assert not (raw / "payload.bin").exists()


def test_download_disabled_names_urls_and_place(upstream, tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DataNotFoundError, match="download=False") as info:
        fetch(spec_for(upstream), raw, download=False)
    assert upstream.as_uri() in str(info.value) and str(raw) in str(info.value)


def test_bad_local_copy_is_moved_aside_never_deleted(upstream, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "payload.bin").write_bytes(b"not the payload")
    with pytest.raises(ChecksumError) as info:
        fetch(spec_for(upstream), raw, download=False)
    (bad,) = raw.glob("payload.bin.bad-*")
    assert bad.read_bytes() == b"not the payload"
    assert str(bad) in str(info.value) and not (raw / "payload.bin").exists()
    # with downloads allowed the rejected copy is replaced by a good download
    assert fetch(spec_for(upstream), raw).path.read_bytes() == PAYLOAD
    assert bad.exists()


def test_move_aside_keeps_every_rejected_copy(tmp_path):
    first = tmp_path / "f.bin"
    names = set()
    for content in (b"1", b"2", b"3"):
        first.write_bytes(content)
        names.add(move_aside(first).name)
    assert len(names) == 3 and all(n.startswith("f.bin.bad-") for n in names)


def test_http_download_and_mirror_fallback(upstream, tmp_path, http_server, dead_url):
    raw = tmp_path / "raw"
    spec = spec_for(upstream, url=dead_url)
    urls = (dead_url, http_server.url("gone.bin"), http_server.url("payload.bin"))
    spec = FileSpec(spec.filename, urls, spec.size, spec.sha256)
    record = fetch(spec, raw)
    assert record.source == http_server.url("payload.bin") and record.path.read_bytes() == PAYLOAD
    assert http_server.requests == [("gone.bin", None), ("payload.bin", None)]
    with pytest.raises(DataNotFoundError, match="HTTP Error 404"):
        fetch(FileSpec("gone.bin", urls[1:2]), raw)


def test_http_resumes_partial_file_with_range(upstream, tmp_path, http_server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "payload.bin.part").write_bytes(PAYLOAD[:300_000])
    record = fetch(spec_for(upstream, url=http_server.url("payload.bin")), raw)
    assert http_server.requests == [("payload.bin", "bytes=300000-")]
    assert record.path.read_bytes() == PAYLOAD and _leftovers(raw, "payload.bin") == []


@pytest.mark.parametrize("size_known", [True, False])
def test_http_interrupted_download_resumes_on_next_call(upstream, tmp_path, http_server, size_known):
    raw = tmp_path / "raw"
    spec = spec_for(upstream, url=http_server.url("payload.bin"), size=len(PAYLOAD) if size_known else None)
    http_server.truncate["payload.bin"] = 200_000
    with pytest.raises(DataNotFoundError, match="200,000 of 1,024,000 bytes"):
        fetch(spec, raw)
    assert (raw / "payload.bin.part").stat().st_size == 200_000 and not (raw / "payload.bin").exists()
    assert fetch(spec, raw).path.read_bytes() == PAYLOAD
    assert http_server.requests[-1] == ("payload.bin", "bytes=200000-")


def test_http_without_range_support_restarts(upstream, tmp_path, http_server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "payload.bin.part").write_bytes(b"x" * 1000)  # garbage that must not be kept
    http_server.no_range = True
    record = fetch(spec_for(upstream, url=http_server.url("payload.bin")), raw)
    assert record.path.read_bytes() == PAYLOAD


def test_http_complete_part_file_answered_416_is_verified(upstream, tmp_path, http_server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "payload.bin.part").write_bytes(PAYLOAD)
    record = fetch(spec_for(upstream, url=http_server.url("payload.bin")), raw)
    assert record.path.read_bytes() == PAYLOAD
    assert http_server.requests == [("payload.bin", f"bytes={len(PAYLOAD)}-")]


def test_http_wrong_bytes_raise_checksum_error_and_are_never_reused(upstream, tmp_path, http_server):
    raw = tmp_path / "raw"
    spec = spec_for(upstream, url=http_server.url("payload.bin"))
    http_server.corrupt.add("payload.bin")
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        fetch(spec, raw)
    (bad,) = raw.glob("payload.bin.bad-*")
    assert str(bad) in str(info.value)
    assert bad.read_bytes() != PAYLOAD and len(bad.read_bytes()) == len(PAYLOAD)
    assert not (raw / "payload.bin").exists() and not (raw / "payload.bin.part").exists()

    with pytest.raises(ChecksumError):
        fetch(spec, raw)
    assert len(list(raw.glob("payload.bin.bad-*"))) == 2
    assert http_server.requests[-1] == ("payload.bin", None)  # a fresh download, not a resume

    http_server.corrupt.clear()
    assert fetch(spec, raw).path.read_bytes() == PAYLOAD
    assert len(list(raw.glob("payload.bin.bad-*"))) == 2


def test_http_retries_503_with_backoff_then_downloads(upstream, tmp_path, http_server, caplog):
    raw = tmp_path / "raw"
    url = http_server.url("payload.bin")
    http_server.fail["payload.bin"] = [503, 503]
    with caplog.at_level(logging.INFO, logger="disent_core.data.files"):
        record = fetch(spec_for(upstream, url=url), raw, backoff_factor=0.05)
    assert record.path.read_bytes() == PAYLOAD and record.source == url
    assert http_server.requests == [("payload.bin", None)] * 3
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2
    assert all(url in m and "HTTP 503" in m for m in retries)
    assert "attempt 1 failed" in retries[0] and "attempt 2 failed" in retries[1]
    assert "retrying in 0.1 s" in retries[1]  # exponential backoff: 0, then 2 x 0.05 s
    assert any(r.getMessage().startswith(f"downloaded {url}") for r in caplog.records)


def test_http_persistent_503_gives_up_after_the_retries(upstream, tmp_path, http_server):
    raw = tmp_path / "raw"
    http_server.fail["payload.bin"] = [503] * 10
    with pytest.raises(DataNotFoundError, match="HTTP Error 503"):
        fetch(spec_for(upstream, url=http_server.url("payload.bin")), raw, retries=2)
    assert len(http_server.requests) == 3
    assert not (raw / "payload.bin").exists()
