"""Pytest fixtures of the data tests; the writers and the server live in ``data_fixtures``."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from data_fixtures import (
    DSpritesFixture,
    FileServer,
    NorbFixture,
    Shapes3dFixture,
    write_dsprites_npz,
    write_norb,
    write_scream_jpeg,
    write_shapes3d_h5,
)

from disent_core.data import files
from disent_core.data.sources import get_source


@pytest.fixture(autouse=True)
def no_retry_backoff(monkeypatch):
    """Downloads retry without waiting (a dead URL would otherwise wait 0 + 2 + 4 + 8 s)."""
    monkeypatch.setattr(files, "BACKOFF_FACTOR", 0.0)


@pytest.fixture
def upstream_dir(tmp_path) -> Path:
    """Where fixture files are written and served from (file:// and HTTP)."""
    path = tmp_path / "upstream"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def dsprites_npz(upstream_dir) -> DSpritesFixture:
    return write_dsprites_npz(upstream_dir / get_source("dsprites").files[0].filename)


@pytest.fixture
def shapes3d_h5(upstream_dir) -> Shapes3dFixture:
    return write_shapes3d_h5(upstream_dir / "3dshapes.h5")


@pytest.fixture
def norb_files(upstream_dir) -> NorbFixture:
    return write_norb(upstream_dir)


@pytest.fixture
def scream_jpeg(upstream_dir) -> Path:
    return write_scream_jpeg(upstream_dir / "The_Scream.jpg")


@pytest.fixture
def http_server(upstream_dir):
    """A FileServer on 127.0.0.1 (ephemeral port) serving ``upstream_dir``; stopped afterwards."""
    server = FileServer(upstream_dir)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def dead_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/missing.bin"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """An empty data root."""
    return tmp_path / "data"
