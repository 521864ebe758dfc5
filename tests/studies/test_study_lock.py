"""One driver per study: ``run`` and ``resume`` hold the study's lock; a second driver stops.

- The lock itself: a second holder is refused with the first one named (host, pid, start time,
  command) and the way to proceed; the lock of a killed holder is taken over and its description
  rewritten; with a PostgreSQL Optuna storage an advisory lock on the server refuses a second
  driver even from another study directory.
- Two real drivers of one study on one runs root: the second (``run`` or ``resume``) exits with
  status 2 naming the first and changes nothing, ``status`` still reads the study, and the study
  ends with each configuration once in Optuna and MLflow under one parent run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from study_helpers import TINY, nested_runs, optuna_states, run_cli, write_spec
from test_study_reliability import start_study, wait_until

from studies.orchestration.lock import LOCK_NAME, StudyLocked, hold_study

HOLD_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from studies.orchestration.lock import hold_study
    with hold_study(Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None):
        print("held", flush=True)
        time.sleep(600)
""")


def holder_of(directory: Path) -> dict:
    text = (directory / LOCK_NAME).read_text()
    return json.loads(text) if text else {}


def hold_in_subprocess(directory: Path, name: str, storage: str = "") -> subprocess.Popen:
    """A process that holds the study and waits to be killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRIPT, str(directory), name, storage],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "held", proc.stderr.read()
    return proc


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_second_holder_is_refused_with_the_first_named(tmp_path):
    study = tmp_path / "runs" / "s"
    with hold_study(study, "s", None):
        holder = holder_of(study)
        assert holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname()
        assert holder["started"] and holder["command"]
        with pytest.raises(StudyLocked) as refused:
            with hold_study(study, "s", None):
                pytest.fail("a second holder got the lock")
    message = str(refused.value)
    assert "\n" not in message
    assert f"pid {os.getpid()} on {socket.gethostname()}, started {holder['started']}" in message
    assert f"kill {os.getpid()}" in message and f"disent-study resume {study}" in message
    assert holder_of(study) == {}  # released: nobody holds it
    with hold_study(study, "s", None):
        assert holder_of(study)["pid"] == os.getpid()


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path):
    study = tmp_path / "s"
    proc = hold_in_subprocess(study, "s")
    assert holder_of(study)["pid"] == proc.pid
    with pytest.raises(StudyLocked, match=f"pid {proc.pid} "):
        with hold_study(study, "s", None):
            pass
    kill(proc)  # no cleanup ran: its description is still in the file
    assert holder_of(study)["pid"] == proc.pid
    with hold_study(study, "s", None):
        assert holder_of(study)["pid"] == os.getpid()


def test_postgres_advisory_lock_refuses_a_second_driver_of_the_study(tmp_path, postgres_url):
    first, second = tmp_path / "a" / "s", tmp_path / "b" / "s"
    with hold_study(first, "s", postgres_url):
        with pytest.raises(StudyLocked) as refused:
            with hold_study(second, "s", postgres_url):
                pytest.fail("a second holder got the advisory lock")
        assert not second.exists()  # refused before it created anything
        message = str(refused.value)
        assert "Optuna study 's'" in message
        assert f"disent-study pid {os.getpid()} on {socket.gethostname()}"[:63] in message
        assert "connected since" in message
        with hold_study(tmp_path / "a" / "t", "t", postgres_url):  # another study is not held
            pass
    with hold_study(second, "s", postgres_url):
        pass

    proc = hold_in_subprocess(first, "s", postgres_url)
    with pytest.raises(StudyLocked, match=f"pid {proc.pid} "):
        with hold_study(second, "s", postgres_url):
            pass
    kill(proc)  # the server releases the lock when the connection closes
    deadline = time.monotonic() + 30
    while True:
        try:
            with hold_study(second, "s", postgres_url):
                break
        except StudyLocked:
            assert time.monotonic() < deadline, "the advisory lock of a killed driver was not released"
            time.sleep(0.5)


@pytest.mark.slow
def test_a_driver_refused_by_the_postgres_lock_creates_nothing(tmp_path, postgres_url):
    spec = write_spec(tmp_path, "pglocked", methods={"beta_vae": {"beta": 4}},
                      storage={"optuna": postgres_url})
    root = tmp_path / "runs"
    with hold_study(tmp_path / "elsewhere" / "pglocked", "pglocked", postgres_url):
        done = run_cli("run", str(spec), "--root", str(root), timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"pid {os.getpid()}" in done.stderr and "Traceback" not in done.stderr
    assert not root.exists()
    assert optuna.study.get_all_study_names(optuna.storages.RDBStorage(postgres_url)) == []


@pytest.mark.slow
def test_two_drivers_of_one_study_run_it_once(tmp_path):
    train = {**TINY["train"], "steps": 400, "report_every": 50}
    spec = write_spec(tmp_path, "twice", train=train, seeds=[0, 1],
                      methods={"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 8}}},
                      search={"algorithm": "random", "num_trials": 2, "max_concurrent": 2, "seed": 0})
    root = tmp_path / "runs"
    study_dir = root / "twice"
    first = start_study(spec, root)
    try:
        # spec.yaml is written under the lock, before study.json, the MLflow runs and the Optuna study
        wait_until(lambda: (study_dir / "spec.yaml").exists(), 120, "the first driver started", first)
        second = subprocess.Popen(
            [sys.executable, "-m", "studies.cli", "run", str(spec), "--root", str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        _, second_err = second.communicate(timeout=120)
        wait_until(lambda: (study_dir / "study.json").exists(), 120, "study.json", first)
        state = json.loads((study_dir / "study.json").read_text())
        resumed = run_cli("resume", str(study_dir), timeout=120)
        status = run_cli("status", str(study_dir), timeout=120)
        assert first.poll() is None, "the first driver ended before the second ones were refused"
    except BaseException:
        first.kill()
        raise
    _, first_err = first.communicate(timeout=400)
    assert first.returncode == 0, first_err[-3000:]

    for refused in (second_err, resumed.stderr):
        assert "Traceback" not in refused, refused[-3000:]
        errors = [line for line in refused.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, refused[-3000:]
        assert "is in use by another driver" in errors[0]
        assert f"pid {first.pid} on {socket.gethostname()}, started " in errors[0]
        assert f"disent-study resume {study_dir}" in errors[0]
    assert second.returncode == 2 and resumed.returncode == 2
    assert status.returncode == 0, status.stderr
    assert "study twice" in status.stdout

    # the study ran once: its study.json, one parent run, each configuration and seed once
    assert json.loads((study_dir / "study.json").read_text()) == state
    assert optuna_states(root, "twice") == {"COMPLETE": 2}
    runs = nested_runs(root, "twice")
    assert len(runs) == 4 and len({r.data.tags["trial_id"] for r in runs}) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("twice")
    every = client.search_runs([experiment.experiment_id])
    parents = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.run_id for r in parents] == [state["parent_run_id"]]
    assert parents[0].info.status == "FINISHED"
    assert len(every) == 5
    assert holder_of(study_dir) == {}
