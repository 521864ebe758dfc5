"""``disent-study ui`` leaves nothing behind: stopping it stops the MLflow server and its uvicorn.

The test starts the real command on a free port against an empty runs root (an empty ``mlflow.db``
is a valid, empty sqlite store), waits until the UI answers, records every descendant process,
stops ``ui`` with a signal and checks that the port is closed and that none of those processes is
left. Processes are read from ``/proc`` (Linux).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc"),
]

READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 40


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process now running."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table = process_table()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {p for p, (parent, _) in table.items() if parent in frontier} - found
        found |= children
        frontier = children
    return found


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` that still run (zombies waiting to be reaped do not count)."""
    table = process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGINT"])
def test_stopping_ui_stops_the_mlflow_server_and_its_workers(tmp_path, sig, status):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "mlflow.db").touch()
    port = free_port()
    log = tmp_path / "ui.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "studies.cli", "ui", "--root", str(root), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            # as a non-interactive shell starts a job with &: SIGINT ignored, so Python installs no
            # KeyboardInterrupt handler; ui must still stop on it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    seen: set[int] = set()
    try:
        def ready() -> bool:
            seen.update(descendants(proc.pid))
            if proc.poll() is not None:
                raise AssertionError(f"ui exited ({proc.returncode}): {log.read_text()[-3000:]}")
            return listening(port)

        assert wait_until(ready, READY_TIMEOUT_S), f"nothing listened on {port}: {log.read_text()[-3000:]}"
        seen.update(descendants(proc.pid))
        assert seen, "ui started no server process"

        proc.send_signal(sig)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == status, log.read_text()[-3000:]
        assert not listening(port), f"port {port} still listening after ui stopped"
        assert wait_until(lambda: not alive(seen), 5), f"left running: {sorted(alive(seen))}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in alive(seen):
            os.kill(pid, signal.SIGKILL)
