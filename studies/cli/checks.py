"""Checks the commands make before they start Ray or write anything, each failing with one message.

- ``check_directory``: a path given as a directory (``--root``, ``--out``) is not a file, nor under one.
- ``check_sqlite``: an SQLite store (``mlflow.db``, ``optuna.db``) is a whole SQLite database: its
  header, its size against the size its header records (a truncated copy), its schema and, up to
  ``QUICK_CHECK_MAX_BYTES``, SQLite's ``PRAGMA quick_check``. The file is opened read-only and
  never changed.
- ``check_reachable``: a server URI (``http(s)://`` tracking, a PostgreSQL or MySQL Optuna
  storage) accepts a TCP connection within ``CONNECT_TIMEOUT_S``, and a database URL's driver is
  installed.
- ``check_stores``: both of the above for a study's tracking URI and Optuna storage.
- ``check_artifacts_inside``: a study whose runs root was copied or moved still has its MLflow
  runs name the original's artifact folder (MLflow records absolute locations); a command that
  would write artifacts there (``resume``, the report's upload) is refused unless told it may.
- ``check_trial_resources``: one trial's ``resources`` fit where it runs. On the embedded local Ray
  (no ``--address`` and no ``$RAY_ADDRESS``) they are compared with this machine's CPUs and CUDA
  devices before Ray starts; on a cluster with the cluster's current total
  (``ray.cluster_resources()``) once connected, unless ``--autoscaling`` says that the cluster adds
  nodes on demand (every config under ``cluster/`` autoscales its GPU workers from zero). A trial
  asking for more would stay pending forever.

Ray, PyTorch and MLflow are imported inside the two checks that use them
(``check_trial_resources``, ``artifacts_outside_root``), so that the commands that run one model in
their own process (``train``, ``evaluate``: ``check_directory``) import none of Ray, Optuna or MLflow
(``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from disent_core.errors import DisentError
from studies.cli.flags import ALLOW_OUTSIDE_ROOT

if TYPE_CHECKING:
    from studies.spec import StudySpec
    from studies.study_dir import StudyState

CONNECT_TIMEOUT_S = 5.0
QUICK_CHECK_MAX_BYTES = 1024**3
"""Larger SQLite files get the header and size checks only (``quick_check`` reads every page)."""
SQLITE_MAGIC = b"SQLite format 3\x00"
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mariadb": 3306}
OPTUNA_TABLE = "studies"
MLFLOW_TABLE = "experiments"


def check_directory(path: Path, what: str) -> None:
    """Refuse a directory argument that is a file or lies under one.

    Args:
        path: the directory (it need not exist yet).
        what: the argument, for the message (``--root``).

    Raises:
        DisentError: ``path`` or one of its parents is not a directory.
    """
    path = path.expanduser()
    for candidate in (path, *path.absolute().parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"lies under the file {candidate}"
                raise DisentError(f"{what} {path} {where}; give a directory")
            return


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI, or None for any other URI (or an in-memory one)."""
    try:
        url = make_url(uri)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def hot_journal(path: Path) -> bool:
    """Whether an SQLite database has a rollback journal left by a writer that did not finish.

    Until the next writer rolls it back the file may hold half a transaction, and a read-only
    connection cannot read it (``attempt to write a readonly database``): it is not corrupt, and
    SQLite restores it when the study's stores next open it for writing.

    Args:
        path: the database file.

    Returns:
        Whether ``<path>-journal`` exists and is not empty.
    """
    journal = path.with_name(path.name + "-journal")
    return journal.is_file() and journal.stat().st_size > 0


def check_sqlite(path: Path, what: str, table: str | None = None) -> None:
    """Refuse an SQLite file that is not a whole database, without changing it.

    Args:
        path: the database file.
        what: what it holds, for the message (``the MLflow store``).
        table: a table the database must hold (None: any schema, an empty file too).

    Raises:
        DisentError: not SQLite, truncated, corrupt, or without ``table``. A database with a hot
            journal (``hot_journal``) is checked for SQLite's header only.
    """
    fix = "restore it from a backup, or move it away to start a new one"
    size = path.stat().st_size
    if size == 0:
        if table is None:
            return
        raise DisentError(f"{what} {path} is empty, so it holds no study; {fix}")
    with path.open("rb") as handle:
        header = handle.read(100)
    if not header.startswith(SQLITE_MAGIC):
        raise DisentError(f"{what} {path} is not an SQLite database (its first bytes are not SQLite's "
                          f"header); {fix}")
    if len(header) < 100:
        raise DisentError(f"{what} {path} is truncated ({size} bytes, less than SQLite's header); {fix}")
    if hot_journal(path):
        return  # a writer was killed mid-transaction; the next writer rolls it back (SQLite's recovery)
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise DisentError(f"{what} {path} is corrupt (its header gives a page size of {page_size}); {fix}")
    pages = int.from_bytes(header[28:32], "big")
    counted = header[24:28] == header[92:96]  # the header's page count is valid (SQLite >= 3.7.0)
    if size % page_size or (counted and size < pages * page_size):
        expected = f"{pages * page_size} bytes" if counted else f"a multiple of {page_size} bytes"
        raise DisentError(f"{what} {path} is truncated ({size} bytes, its header says {expected}); {fix}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            tables = {row[0] for row in rows}
            if size <= QUICK_CHECK_MAX_BYTES:
                verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise DisentError(f"{what} {path} is corrupt (SQLite: {verdict}); {fix}")
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise DisentError(f"{what} {path} is corrupt (SQLite: {exc}); {fix}") from None
    if table is not None and table not in tables:
        raise DisentError(f"{what} {path} is an SQLite database without a {table!r} table, so not "
                          f"{what}; give the right file")


def _shown(uri: str) -> str:
    """A URI as messages show it: any password hidden."""
    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return uri


def check_reachable(uri: str, what: str) -> None:
    """Refuse a server URI whose host does not accept a TCP connection within ``CONNECT_TIMEOUT_S``.

    Args:
        uri: an ``http(s)://`` URI or a SQLAlchemy database URL; others (files, sqlite) pass.
        what: the spec field, for the message (``tracking.mlflow_uri``).

    Raises:
        DisentError: the database driver is missing, or the host cannot be reached.
    """
    parts = urlsplit(uri)
    host, port = None, None
    if parts.scheme in ("http", "https"):
        host, port = parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
    else:
        try:
            url: URL = make_url(uri)
        except ArgumentError:
            return
        backend = url.get_backend_name()
        if backend == "sqlite":
            return
        try:
            url.get_dialect().import_dbapi()
        except NoSuchModuleError:
            raise DisentError(f"{what} {_shown(uri)}: SQLAlchemy knows no such database or driver; give a "
                              "URL such as postgresql+psycopg2://USER@HOST:5432/DB") from None
        except ImportError as exc:
            raise DisentError(f"{what} {_shown(uri)}: its driver is not installed ({exc}); install it "
                              "(PostgreSQL: pip install -e '.[cluster]')") from None
        host, port = url.host, url.port or DEFAULT_PORTS.get(backend)
    if not host or not port:
        return
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise DisentError(f"{what} {_shown(uri)}: cannot connect to {host}:{port} within "
                          f"{CONNECT_TIMEOUT_S:.0f} s ({reason}); start the server or fix the URI") from None


def check_stores(tracking_uri: str, optuna_storage: str, must_exist: bool) -> None:
    """Check a study's MLflow store and Optuna storage before anything uses them.

    Args:
        tracking_uri: the MLflow tracking URI.
        optuna_storage: the Optuna storage URL.
        must_exist: the study exists (``resume``, ``status``, ``report``): its SQLite files must be
            there and hold their tables; otherwise (``run``) an absent file is created later.

    Raises:
        DisentError: a store is missing, not whole, or unreachable.
    """
    for uri, what, table in ((tracking_uri, "the MLflow store", MLFLOW_TABLE),
                             (optuna_storage, "the Optuna storage", OPTUNA_TABLE)):
        path = sqlite_path(uri)
        if path is None:
            field = "tracking.mlflow_uri" if table == MLFLOW_TABLE else "storage.optuna"
            check_reachable(uri, field)
        elif path.exists():
            check_sqlite(path, what, table if must_exist else None)
        elif must_exist:
            raise DisentError(f"{what} {path} does not exist; the study's files are incomplete (was it "
                              "moved or deleted?)")


def artifacts_outside_root(state: StudyState) -> Path | None:
    """Where a study with a local MLflow store keeps its artifacts, when that is outside its runs root.

    Args:
        state: the study's state (``StudyState.load`` resolved its locations under its root).

    Returns:
        The experiment's artifact folder if the store is a local SQLite file and the folder lies
        outside ``state.root`` (the study was copied or moved from there); else None.
    """
    from mlflow.tracking import MlflowClient

    if sqlite_path(state.tracking_uri) is None:
        return None  # a tracking server keeps the artifacts where it is configured to
    location = MlflowClient(state.tracking_uri).get_experiment(state.experiment_id).artifact_location
    parts = urlsplit(location)
    if parts.scheme not in ("", "file"):
        return None
    folder = Path(unquote(parts.path))
    return None if folder.is_relative_to(state.root) else folder


def check_artifacts_inside(state: StudyState, command: str, allow: bool) -> None:
    """Refuse a command that would write MLflow artifacts outside the study's runs root.

    Args:
        state: the study's state.
        command: the command, for the message (``resume``).
        allow: ``--allow-outside-root`` was given: accept writing there.

    Raises:
        DisentError: the artifacts are outside the root and ``allow`` is False.
    """
    folder = None if allow else artifacts_outside_root(state)
    if folder is None:
        return
    origin = f" (it was copied or moved from {state.created_under})" if state.created_under else ""
    raise DisentError(
        f"the MLflow runs of study {state.name} keep their artifacts in {folder}, outside its runs root "
        f"{state.root}{origin}: `{command}` would write there. Work on the study where it was created, "
        f"or give {ALLOW_OUTSIDE_ROOT} to write into that folder"
    )


def _local_ray(address: str | None) -> bool:
    return (address or os.environ.get("RAY_ADDRESS") or "local") == "local"


def check_trial_resources(spec: StudySpec, address: str | None, autoscaling: bool) -> None:
    """Refuse trial resources that the Ray cluster the study runs on can never give one trial.

    Args:
        spec: the study spec (``resources.cpu``, ``resources.gpu``).
        address: the ``--address`` given (None: ``$RAY_ADDRESS``, else the embedded local Ray).
        autoscaling: the cluster adds nodes on demand, so its current total is no limit.

    Raises:
        DisentError: the numbers asked for and available, and what to change.
    """
    asked = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    if _local_ray(address):
        import torch

        have = {"CPU": float(os.cpu_count() or 1), "GPU": float(torch.cuda.device_count())}
        where = "this machine (the embedded local Ray)"
    elif autoscaling:
        return
    else:
        import ray

        from studies.orchestration.runner import init_ray

        init_ray(address)
        total = ray.cluster_resources()
        have = {"CPU": float(total.get("CPU", 0)), "GPU": float(total.get("GPU", 0))}
        where = f"the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}"
    for kind, amount in asked.items():
        if amount > have[kind]:
            hint = (" (pass --autoscaling if the cluster adds nodes on demand)"
                    if not _local_ray(address) else "")
            raise DisentError(
                f"resources.{kind.lower()}: each trial asks for {amount:g} {kind}(s) but {where} has "
                f"{have[kind]:g}, so every trial would wait forever; lower resources.{kind.lower()} to at "
                f"most {have[kind]:g}{hint}"
            )
