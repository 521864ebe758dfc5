"""One driver per study: an exclusive lock held for the whole life of ``run`` or ``resume``.

Two drivers of one study would both run every configuration, overwrite ``study.json`` and mark each
other's MLflow runs KILLED. ``hold_study`` therefore takes, before any state of the study is created
or changed:

- an ``fcntl.flock`` on ``<study directory>/study.lock``. The lock belongs to the open file, so the
  operating system releases it when the driver exits in any way (``kill -9`` included) and a lock
  file left behind by a dead driver is simply taken over. The holder writes who it is into the file
  (host, pid, start time, command), which a refused driver reads back for its message; the file is
  emptied when the lock is released.
- when the Optuna storage is PostgreSQL (a cluster, where study directories on different machines
  or on shared storage may not see each other's ``flock``), also ``pg_try_advisory_lock(key)`` on a
  dedicated connection kept open for the driver's life, ``key`` derived from the study name. The
  server releases it when that connection closes, also when the driver dies. The connection's
  ``application_name`` says who holds it, and a refused driver reads it from ``pg_stat_activity``.

A refused driver raises ``StudyLocked`` (a ``DisentError``: one line, exit status 2) naming the
holder and how to proceed. Readers (``status``, ``report``) take no lock.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from disent_core.errors import DisentError

LOCK_NAME = "study.lock"
APPLICATION_PREFIX = "disent-study"
_HOLDER_READ_TRIES = 20
_HOLDER_READ_WAIT_S = 0.05


@dataclass(frozen=True)
class Holder:
    """Who holds a study: written into the lock file by the driver that holds it."""

    host: str
    pid: int
    started: str
    command: str

    @classmethod
    def this_process(cls) -> Holder:
        """This process as a holder: its host, pid, the time now and its command line."""
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        return cls(socket.gethostname(), os.getpid(), started, shlex.join(sys.argv) or sys.executable)

    def describe(self) -> str:
        """``pid 123 on host, started 2025-01-01T12:00:00+00:00 (command)``."""
        return f"pid {self.pid} on {self.host}, started {self.started} ({self.command})"


class StudyLocked(DisentError):
    """Another driver holds the study."""

    def __init__(self, what: str, holder: str, advice: str) -> None:
        super().__init__(f"{what} is in use by another driver: {holder}; {advice}")


def _advice(directory: Path, holder: Holder | None = None) -> str:
    stop = (f"stop that process (kill {holder.pid} on {holder.host})" if holder is not None
            else "stop that process")
    return (f"wait for it to end, or {stop} and then continue the study with "
            f"`disent-study resume {directory}`")


class FileStudyLock:
    """``flock`` on ``<directory>/study.lock``, with the holder's description in the file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write this process into the file.

        Raises:
            StudyLocked: another process holds it.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = self.read_holder()
            described = holder.describe() if holder is not None else f"a process holding {self.path}"
            raise StudyLocked(f"study {self.directory}", described, _advice(self.directory, holder)) from None
        self.fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(Holder.this_process())).encode(), 0)
        os.fsync(fd)

    def read_holder(self) -> Holder | None:
        """The holder written into the lock file (the holder writes it just after it locks)."""
        for _ in range(_HOLDER_READ_TRIES):
            try:
                return Holder(**json.loads(self.path.read_text()))
            except (OSError, ValueError, TypeError):
                time.sleep(_HOLDER_READ_WAIT_S)
        return None

    def release(self) -> None:
        """Empty the file and release the lock (closing the file releases it too)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)


def is_postgresql(storage: str | None) -> bool:
    """Whether an Optuna storage URL names a PostgreSQL database."""
    if not storage:
        return False
    try:
        return make_url(storage).get_backend_name() == "postgresql"
    except ArgumentError:
        return False


def advisory_key(study_name: str) -> int:
    """The signed 64-bit PostgreSQL advisory-lock key of a study."""
    digest = hashlib.sha256(f"{APPLICATION_PREFIX}:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresStudyLock:
    """``pg_try_advisory_lock`` on a dedicated connection kept open while the lock is held."""

    def __init__(self, storage: str, study_name: str, directory: Path) -> None:
        self.storage = storage
        self.study_name = study_name
        self.directory = directory
        self.key = advisory_key(study_name)
        self.engine: sqlalchemy.Engine | None = None
        self.connection: sqlalchemy.Connection | None = None

    def _connect_args(self, holder: Holder) -> dict[str, Any]:
        if make_url(self.storage).get_driver_name() not in ("psycopg2", "psycopg"):
            return {}
        name = f"{APPLICATION_PREFIX} pid {holder.pid} on {holder.host}"[:63]
        # keepalives: a driver that vanishes without closing its socket frees the lock within minutes
        return {"application_name": name, "keepalives": 1, "keepalives_idle": 60,
                "keepalives_interval": 10, "keepalives_count": 6}

    def acquire(self) -> None:
        """Take the advisory lock of the study on its PostgreSQL server.

        Raises:
            StudyLocked: another session holds it.
            DisentError: the server cannot be reached, or its database driver is not installed.
        """
        where = make_url(self.storage).render_as_string(hide_password=True)
        try:
            engine = sqlalchemy.create_engine(self.storage, poolclass=NullPool,
                                              connect_args=self._connect_args(Holder.this_process()))
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except ModuleNotFoundError as exc:
            raise DisentError(f"the Optuna storage {where} needs the {exc.name} package: "
                              "pip install 'disent-studies[cluster]'") from None
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise DisentError(f"cannot connect to the Optuna storage {where} to lock the study: "
                              f"{reason}") from None
        try:
            taken = connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"),
                                       {"key": self.key}).scalar()
            holder = None if taken else self._holder(connection)
        except BaseException:
            connection.close()
            engine.dispose()
            raise
        if not taken:
            connection.close()
            engine.dispose()
            raise StudyLocked(f"Optuna study {self.study_name!r} in {where}", holder or "another session",
                              _advice(self.directory))
        self.engine, self.connection = engine, connection

    def _holder(self, connection: sqlalchemy.Connection) -> str | None:
        """The session holding the lock, from ``pg_locks`` and ``pg_stat_activity``."""
        row = connection.execute(sqlalchemy.text(
            "SELECT a.application_name, a.backend_start, a.client_addr, a.pid FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low AND l.objsubid = 1"
        ), {"high": (self.key >> 32) & 0xFFFFFFFF, "low": self.key & 0xFFFFFFFF}).first()
        if row is None:
            return None
        name, started, address, backend = row
        who = name if name else f"server session {backend}"
        since = f", connected since {started.isoformat(timespec='seconds')}" if started else ""
        source = f" from {address}" if address else ""
        return f"{who}{since}{source}"

    def release(self) -> None:
        """Unlock and close the dedicated connection."""
        connection, engine = self.connection, self.engine
        self.connection = self.engine = None
        if connection is None or engine is None:
            return
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except SQLAlchemyError:
            pass  # a closed connection has released the lock already
        finally:
            connection.close()
            engine.dispose()


@contextlib.contextmanager
def hold_study(directory: Path, study_name: str, optuna_storage: str | None) -> Iterator[None]:
    """Hold the study exclusively for the ``with`` block (see the module docstring).

    The PostgreSQL lock, when there is one, is taken first, so a refused driver has created
    nothing; then the study directory is created if missing and locked.

    Args:
        directory: the study directory, ``<root>/<study name>``.
        study_name: the Optuna study name (the key of the PostgreSQL lock).
        optuna_storage: the study's Optuna storage URL (``None``: the default sqlite file).

    Raises:
        StudyLocked: another driver holds the study.
    """
    locks: list[FileStudyLock | PostgresStudyLock] = []
    try:
        if is_postgresql(optuna_storage):
            locks.append(PostgresStudyLock(str(optuna_storage), study_name, directory))
            locks[-1].acquire()
        directory.mkdir(parents=True, exist_ok=True)
        locks.append(FileStudyLock(directory))
        locks[-1].acquire()
        yield
    finally:
        for lock in reversed(locks):
            lock.release()
