"""Throw-away services on 127.0.0.1 for the study tests and ``bench/study_scale.py``.

- ``postgres_server``: a PostgreSQL server (Debian's ``postgresql``) started with ``initdb`` +
  ``pg_ctl`` in a temporary directory on a free port, trust auth and no durability. As root it runs
  as the ``postgres`` system user (PostgreSQL refuses root); the server binaries are installed with
  apt-get when missing.
- ``mlflow_server``: ``mlflow server`` over a given backend store with its own artifacts
  destination, one uvicorn worker and no job runner (the default four workers and job runner take
  about 27 s and 2.8 GiB on 2 cores; docs/provenance.md, "Stack behaviours the code relies on").

Both are context managers: every process they start is stopped on exit. A service that cannot be
started raises ``RuntimeError`` with the tail of its log.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PG_USER = "postgres"
MLFLOW_READY_TIMEOUT_S = 90


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Returns:
        The port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file, for an error message.

    Args:
        path: the log.
        chars: how many characters at most.

    Returns:
        Its last ``chars`` characters, or a line saying there is no log.
    """
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return f"(no log at {path})"


def live_pids(match: Callable[[int, int], bool]) -> list[int]:
    """Pids of live (not zombie) processes for which ``match(pid, process group id)`` holds.

    Args:
        match: the test of a process.

    Returns:
        The pids.
    """
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
    """SIGTERM the process group started with ``start_new_session``, SIGKILL whatever outlives ``grace_s``.

    Args:
        process: the group's leader.
        grace_s: seconds the group has to exit after SIGTERM.
    """
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process.poll() is not None and not live_pids(lambda pid, pgid: pgid == group):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


# ------------------------------------------------------------------------------------------ PostgreSQL


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL server that trusts ``user`` on ``host:port``."""

    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server.

        Args:
            database: the database's name.

        Returns:
            Its psycopg2 URL (what a spec's ``storage.optuna`` holds).
        """
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str) -> Any:
        """A psycopg2 connection to a database on this server.

        Args:
            database: the database's name.

        Returns:
            The open connection (the caller closes it).
        """
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database,
                                connect_timeout=10)

    def create_database(self, name: str) -> str:
        """Create an empty database.

        Args:
            name: the database's name.

        Returns:
            Its psycopg2 SQLAlchemy URL.
        """
        connection = self.connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def _pg_bindir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres`` (Debian: /usr/lib/postgresql/N/bin).

    Returns:
        The newest version's directory, else the one on PATH, else None.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    return None


def _install_postgres() -> str:
    """Install Debian's ``postgresql`` with apt-get (root with apt only).

    Returns:
        What went wrong, or '' on success.
    """
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
    """A command run as the ``postgres`` system user when we are root (initdb refuses root).

    Args:
        command: the argv.

    Returns:
        ``command`` itself when not root, else it wrapped in ``runuser`` (or ``su``).
    """
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", PG_USER, "--", *command]
    return ["su", PG_USER, "-s", "/bin/sh", "-c", shlex.join(command)]


@contextlib.contextmanager
def postgres_server(max_connections: int | None = None) -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own on 127.0.0.1:<free port>, trust auth, no fsync, stopped on exit.

    Args:
        max_connections: the server's ``max_connections``; None: what initdb chose.

    Yields:
        The server.

    Raises:
        RuntimeError: the server binaries are missing and cannot be installed, there is no
            ``postgres`` user to run the server as, or initdb or ``pg_ctl start`` failed.
    """
    bindir = _pg_bindir()
    if bindir is None:
        problem = _install_postgres()
        bindir = _pg_bindir()
        if bindir is None:
            raise RuntimeError("cannot start PostgreSQL: "
                               f"{problem or 'no initdb/pg_ctl after apt-get install postgresql'}")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            raise RuntimeError(f"running as root but there is no {PG_USER!r} system user to run PostgreSQL "
                               "as (apt-get install postgresql creates it)") from None
    # in the system's temporary directory, not a caller's private (0700) one: the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="disent-pg-"))
    data, log = base / "data", base / "server.log"
    user = PG_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(_as_pg_user(command), capture_output=True, text=True, timeout=120, cwd=base)

    try:
        if os.geteuid() == 0:
            shutil.chown(base, PG_USER, PG_USER)
        os.chmod(base, 0o700)
        port = free_port()
        init = run([str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                    "--locale=C", "--no-sync"])
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n"
                               f"{init.stderr[-3000:]}")
        # a throw-away server: no durability, sockets in its own directory (not /var/run/postgresql)
        options = f"-h {HOST} -p {port} -k {base} "
        if max_connections is not None:
            options += f"-c max_connections={max_connections} "
        options += "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        pg_ctl = str(bindir / "pg_ctl")
        start = run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
        if start.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({start.returncode}):\n{start.stderr[-2000:]}\n"
                               f"{log_tail(log)}")
        try:
            yield PostgresServer(HOST, port, user)
        finally:
            if run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"]).returncode != 0:
                # last resort: the postmaster's pid is the first line of postmaster.pid
                with contextlib.suppress(OSError, ValueError, IndexError):
                    os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- MLflow


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its URL, backend store, artifacts destination and log."""

    url: str
    backend_uri: str
    artifacts: Path
    log: Path


@contextlib.contextmanager
def mlflow_server(backend_uri: str, directory: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1:<free port> (one worker, no job runner), stopped on exit.

    Args:
        backend_uri: its backend store (``sqlite:///...`` or a PostgreSQL URL).
        directory: its working directory, created if missing, which holds its artifacts destination
            (``mlflow-artifacts``) and its log (``mlflow-server.log``).

    Yields:
        The server, healthy (``/health`` answers 200).

    Raises:
        RuntimeError: it exited, or was not healthy within ``MLFLOW_READY_TIMEOUT_S``.
    """
    artifacts, log = directory / "mlflow-artifacts", directory / "mlflow-server.log"
    artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
               "--artifacts-destination", str(artifacts), "--host", HOST, "--port", str(port),
               "--workers", "1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + MLFLOW_READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode} before it was ready:\n"
                                   f"{log_tail(log)}")
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready on {url}/health after {MLFLOW_READY_TIMEOUT_S} "
                                   f"s:\n{log_tail(log)}")
            time.sleep(0.5)
        yield MlflowServer(url, backend_uri, artifacts, log)
    finally:
        _stop_group(process)
