"""Shared fixtures of the study tests: real services on 127.0.0.1 and a tiny study spec.

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

import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

PG_USER = "postgres"
MLFLOW_READY_TIMEOUT_S = 90


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return f"(no log at {path})"


# ------------------------------------------------------------------------------------------ PostgreSQL


def _pg_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def _install_postgres() -> str:
    """apt-get install the server (root with apt only); what went wrong, or '' on success."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return ("the PostgreSQL server binaries are missing and apt-get cannot install them here "
                "(not root, or no apt-get); install Debian's `postgresql` package")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return ""


def _as_pg_user(command: list[str]) -> list[str]:
    """``command`` run as the ``postgres`` system user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--", *command]
    return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(command)]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` (what a spec's ``storage.optuna`` holds)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                                      connect_timeout=10)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own on 127.0.0.1:<free port>, trust auth, stopped at session end."""
    bindir = _pg_bindir()
    if bindir is None:
        problem = _install_postgres()
        bindir = _pg_bindir()
        if bindir is None:
            problem = problem or "no initdb/pg_ctl after apt-get install postgresql"
            pytest.fail(f"cannot start PostgreSQL: {problem}")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            pytest.fail(f"running as root but there is no {PG_USER!r} system user to run PostgreSQL as "
                        "(apt-get install postgresql creates it)")
    # not under pytest's tmp_path: that is private to root (0700) and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="disent-pg-"))
    data, log = base / "data", base / "server.log"
    user = PG_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        shutil.chown(base, PG_USER, PG_USER)
    os.chmod(base, 0o700)
    port = free_port()

    def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(_as_pg_user(command), capture_output=True, text=True, timeout=timeout, cwd=base)

    init = run([str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync"])
    if init.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-3000:]}")
    # a throw-away server: no durability, sockets in its own directory (not /var/run/postgresql)
    options = (f"-h 127.0.0.1 -p {port} -k {base} "
               "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    pg_ctl = str(bindir / "pg_ctl")
    start = run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
    if start.returncode != 0:
        message = f"pg_ctl start failed ({start.returncode}):\n{start.stderr[-2000:]}\n{log_tail(log)}"
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(message)
    try:
        yield PostgresServer("127.0.0.1", port, user)
    finally:
        stop = run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"])
        if stop.returncode != 0:
            # last resort: the postmaster's pid is the first line of postmaster.pid
            try:
                pid = int((data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A new, empty database on ``postgres_server``: its psycopg2 SQLAlchemy URL."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


# ---------------------------------------------------------------------------------------------- MLflow


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_store: Path
    artifacts: Path
    log: Path


def live_pids(match: Callable[[int, int], bool]) -> list[int]:
    """Pids of live (not zombie) processes for which ``match(pid, process group id)`` holds."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if fields[0] != "Z" and match(int(entry), int(fields[2])):
            found.append(int(entry))
    return found


def _stop_group(process: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM the process group started with ``start_new_session``, SIGKILL whatever outlives ``grace_s``."""
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process.poll() is not None and not live_pids(lambda pid, pgid: pgid == group):
            return
        time.sleep(0.2)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1:<free port>: sqlite backend, artifacts served to a directory."""
    directory = tmp_path / "mlflow-server"
    directory.mkdir()
    backend = directory / "mlflow.db"
    artifacts = directory / "artifacts"
    log = directory / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{backend}",
               "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + MLFLOW_READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode} before it was ready:\n"
                            f"{log_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not ready on {url}/health after {MLFLOW_READY_TIMEOUT_S} s:\n"
                            f"{log_tail(log)}")
            time.sleep(0.5)
        yield MlflowServer(url, backend, artifacts, log)
    finally:
        _stop_group(process)


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
