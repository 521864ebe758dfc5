"""Shared fixtures of the study tests: real services on 127.0.0.1 and a tiny study spec.

The services come from ``bench/local_services.py`` (on the path through pytest's ``pythonpath``):

- ``postgres_url``: a fresh database on a PostgreSQL server (Debian's ``postgresql``) that this
  session starts itself with ``initdb`` + ``pg_ctl`` in a temporary directory on a free port; the
  server binaries are installed with apt-get when missing and the tests run as root. As root, the
  server runs as the ``postgres`` system user (PostgreSQL refuses root).
- ``mlflow_server``: ``mlflow server`` with a sqlite backend and its own artifacts destination,
  one uvicorn worker and no job runner (the default four workers and job runner take about 27 s
  and 2.8 GiB on 2 cores; docs/provenance.md, "Stack behaviours the code relies on").
- ``write_spec``: writes a small study spec (two beta-VAE configurations x two seeds, 20 steps).

Every process started here is stopped in the fixture's teardown. A service that cannot be started
fails the test with its log; nothing is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import local_services
import pytest
import yaml
from local_services import MlflowServer, PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own on 127.0.0.1:<free port>, trust auth, stopped at session end."""
    with local_services.postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database on ``postgres_server``: its psycopg2 SQLAlchemy URL."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1:<free port>: sqlite backend, artifacts served to a directory."""
    directory = tmp_path / "mlflow-server"
    with local_services.mlflow_server(f"sqlite:///{directory / 'mlflow.db'}", directory) as server:
        yield server


# ------------------------------------------------------------------------------------------ study spec


def tiny_spec(name: str, **overrides: Any) -> dict[str, Any]:
    """Two beta-VAE configurations x two seeds, 20 steps, MIG on the fast protocol."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": {"name": "dsprites_procedural"},
        "model": {"latent_dim": 4, "base_channels": 8},
        "train": {"steps": 20, "batch_size": 16, "report_every": 10},
        "methods": {"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 8}}},
        "seeds": [0, 1],
        "evaluation": {"protocol": "fast", "metrics": ["mig"]},
        "objective": {"metric": "mig.discrete_mig", "mode": "max"},
        "search": {"algorithm": "random", "num_trials": 2, "max_concurrent": 2, "seed": 0},
        "resources": {"cpu": 1},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """``write_spec(name, directory=tmp_path, **top-level overrides)`` -> path of the spec YAML."""

    def write(name: str, directory: Path | None = None, **overrides: Any) -> Path:
        directory = directory or tmp_path
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.yaml"
        path.write_text(yaml.safe_dump(tiny_spec(name, **overrides), sort_keys=False))
        return path

    return write
