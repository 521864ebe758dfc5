"""What ``run`` and ``resume`` check before Ray starts, and the exit status of a study whose trials
all failed."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray
from study_helpers import TINY, run_cli, write_spec

from disent_core.errors import DisentError
from studies.cli import checks
from studies.cli.study import exit_status
from studies.orchestration import runner
from studies.spec import StudySpec, validate_spec

METHODS = {"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 8}}}


def _spec(name: str, **sections: Any) -> StudySpec:
    return validate_spec({"name": name, **TINY, "methods": METHODS, **sections})


def _database(path: Path, table: str = "studies") -> Path:
    connection = sqlite3.connect(path)
    connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, value TEXT)")
    connection.executemany(f"INSERT INTO {table} (value) VALUES (?)", [("x" * 200,)] * 500)
    connection.commit()
    connection.close()
    return path


def test_a_whole_sqlite_store_passes_and_a_damaged_one_is_named(tmp_path):
    good = _database(tmp_path / "optuna.db")
    checks.check_sqlite(good, "the Optuna storage", "studies")
    data = good.read_bytes()
    damaged = {
        "garbage": (b"\x00" * 4096, "is not an SQLite database"),
        "truncated": (data[: len(data) // 2], "is truncated"),
        "cut inside the header": (data[:60], "is truncated"),
        "another schema": (_database(tmp_path / "o.db", "runs").read_bytes(), "without a 'studies' table"),
    }
    for name, (content, message) in damaged.items():
        path = tmp_path / f"{name}.db"
        path.write_bytes(content)
        with pytest.raises(DisentError, match=message):
            checks.check_sqlite(path, "the Optuna storage", "studies")
        assert path.read_bytes() == content, name
        assert sorted(p.name for p in tmp_path.glob(f"{name}.db*")) == [f"{name}.db"]


def test_a_store_whose_writer_was_killed_mid_transaction_passes_and_recovers(tmp_path):
    """A driver killed during an Optuna or MLflow write leaves a hot journal: a read-only check cannot
    read the file (SQLite: attempt to write a readonly database), but it is not corrupt; the next
    writer rolls the journal back."""
    path = _database(tmp_path / "optuna.db")
    script = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('PRAGMA cache_size=1')\n"
        "c.execute('BEGIN')\n"
        "c.execute('CREATE TABLE filler (x BLOB)')\n"
        "for _ in range(200):\n"
        "    c.execute('INSERT INTO filler VALUES (randomblob(4096))')\n"
        "os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True)
    assert killed.returncode == -9
    assert checks.hot_journal(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # what the check used to report
        ro = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ro.execute("PRAGMA quick_check").fetchone()
    checks.check_sqlite(path, "the Optuna storage", "studies")  # not called corrupt
    assert checks.hot_journal(path)  # and not changed by the check
    writer = sqlite3.connect(path)  # the study's next write rolls the transaction back
    assert writer.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert "filler" not in {r[0] for r in writer.execute("SELECT name FROM sqlite_master")}
    writer.close()
    assert not checks.hot_journal(path)
    checks.check_sqlite(path, "the Optuna storage", "studies")


def test_an_empty_store_is_fine_for_a_new_study_only(tmp_path):
    empty = tmp_path / "mlflow.db"
    empty.touch()
    uri = f"sqlite:///{empty}"
    checks.check_stores(uri, f"sqlite:///{tmp_path / 'absent.db'}", must_exist=False)
    with pytest.raises(DisentError, match=r"mlflow\.db is empty, so it holds no study"):
        checks.check_stores(uri, f"sqlite:///{tmp_path / 'absent.db'}", must_exist=True)
    assert not (tmp_path / "absent.db").exists()


def test_an_unreachable_server_is_refused_fast_and_a_listening_one_passes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        checks.check_reachable(f"http://127.0.0.1:{port}", "tracking.mlflow_uri")
    started = time.monotonic()
    with pytest.raises(DisentError, match=rf"tracking.mlflow_uri http://127.0.0.1:{port}: cannot connect"):
        checks.check_reachable(f"http://127.0.0.1:{port}", "tracking.mlflow_uri")
    assert time.monotonic() - started < checks.CONNECT_TIMEOUT_S + 1


def test_a_missing_or_unknown_database_driver_is_named():
    with pytest.raises(DisentError, match="its driver is not installed"):
        checks.check_reachable("mysql+pymysql://u@127.0.0.1/db", "storage.optuna")
    with pytest.raises(DisentError, match="knows no such database or driver"):
        checks.check_reachable("mysql+nosuchdriver://u@127.0.0.1/db", "storage.optuna")


def test_trial_resources_are_compared_with_the_machine_or_the_cluster(monkeypatch):
    cpus = os.cpu_count() or 1
    fits = _spec("fits", resources={"cpu": cpus})
    too_big = _spec("big", resources={"cpu": cpus + 1})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    checks.check_trial_resources(fits, None, autoscaling=False)
    with pytest.raises(DisentError, match=rf"resources.cpu: each trial asks for {cpus + 1} CPU.* has {cpus}"):
        checks.check_trial_resources(too_big, None, autoscaling=False)
    # a cluster: compared with its current total once connected, unless it autoscales
    connected = []
    monkeypatch.setattr(runner, "init_ray", connected.append)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0 * cpus + 2})
    checks.check_trial_resources(too_big, "ray://head:10001", autoscaling=False)
    gpu = _spec("gpu", resources={"cpu": 1, "gpu": 1})
    with pytest.raises(DisentError, match=r"resources.gpu: .* at ray://head:10001 has 0.*--autoscaling"):
        checks.check_trial_resources(gpu, "ray://head:10001", autoscaling=False)
    checks.check_trial_resources(gpu, "ray://head:10001", autoscaling=True)
    assert connected == ["ray://head:10001", "ray://head:10001"]


def test_the_exit_status_is_1_only_when_every_trial_failed(tmp_path, capsys):
    assert exit_status(tmp_path) == 0
    for statuses, expected in ((["failed", "completed"], 0), (["failed", "failed"], 1)):
        pd.DataFrame({"status": statuses}).to_parquet(tmp_path / "results.parquet")
        assert exit_status(tmp_path) == expected
    assert "all 2 trial(s) of the study failed" in capsys.readouterr().err


@pytest.mark.slow
def test_a_study_whose_trials_all_fail_exits_non_zero(tmp_path, monkeypatch):
    """Real dSprites that may not be downloaded: every trial fails on its data, the study exits 1."""
    path = write_spec(tmp_path, "allfail", methods=METHODS, seeds=[0], max_failures=0,
                      dataset={"name": "dsprites_full", "options": {"download": False}},
                      train={"steps": 10, "batch_size": 8, "report_every": 5},
                      search={"algorithm": "random", "num_trials": 2, "max_concurrent": 1})
    monkeypatch.setenv("DISENT_DATA", str(tmp_path / "no-data"))
    done = run_cli("run", str(path), "--root", str(tmp_path / "runs"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: all 2 trial(s) of the study failed; `disent-study status {tmp_path / 'runs' / 'allfail'}` "
        "gives each one's reason"
    )
