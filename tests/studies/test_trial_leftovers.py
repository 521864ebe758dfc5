"""A killed or aborted trial leaves nothing in the system temp dir, and its restart cleans up.

``run_member_trial`` runs in a subprocess with ``TMPDIR`` and ``HOME`` pointing at empty directories;
Tune's session calls (trial id, checkpoint) and the trainer are stand-ins, so no Ray starts. The
stand-in trainer writes a checkpoint into the trial's scratch directory and then SIGKILLs its own
process (a worker killed mid-trial: no ``finally`` runs), raises (an aborted trial) or returns
(Tune's restart of the killed trial, after a retry or ``resume``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from study_helpers import write_spec

from studies.orchestration.trainable import WORK_ROOT
from studies.spec import load_spec

pytestmark = pytest.mark.slow

ATTEMPT = r"""
import json, os, signal, sys
from pathlib import Path

import ray
from ray import tune

from disent_core.train import CHECKPOINT_NAME
from studies.orchestration import trainable

spec_path, mode = sys.argv[1:]


class Context:
    def get_trial_id(self):
        return "0a1b2c3d"


def trainer(config, on_report, checkpoint_dir, resume_from, check_dataset):
    stale = sorted(p.name for p in checkpoint_dir.iterdir())
    if stale:
        raise SystemExit(f"the attempt started with files of an earlier one: {stale}")
    (checkpoint_dir / CHECKPOINT_NAME).write_bytes(bytes(1 << 20))
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "abort":
        raise RuntimeError("aborted")


tune.get_context = Context
tune.get_checkpoint = lambda: None
ray.get_gpu_ids = lambda: []
trainable.train = trainer
trainable.run_member_trial({"method": "beta_vae"}, json.loads(Path(spec_path).read_text()))
"""


@pytest.fixture
def attempt(tmp_path):
    spec = load_spec(write_spec(tmp_path, "leftovers", methods={"beta_vae": {"beta": 4}}))
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec.model_dump(mode="json")))
    temp = tmp_path / "tmp"
    home = tmp_path / "home"
    temp.mkdir()
    home.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "HOME": str(home)}

    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", ATTEMPT, str(spec_path), mode],
                              capture_output=True, text=True, timeout=300, env=env)

    work = home / WORK_ROOT.relative_to("~") / "leftovers" / "0a1b2c3d"
    return run, temp, work


def leftovers(temp: Path) -> list[str]:
    """Everything in the temp dir, where no trial may keep its scratch files."""
    return sorted(p.name for p in temp.iterdir())


def test_killed_trial_leaves_nothing_in_the_temp_dir_and_its_restart_cleans_up(attempt):
    run, temp, work = attempt
    killed = run("kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert leftovers(temp) == []
    assert work.is_dir()  # the dead attempt's checkpoint, in the trial's own scratch directory

    restarted = run("finish")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert leftovers(temp) == []
    assert not work.exists()


def test_aborted_trial_leaves_nothing_behind(attempt):
    run, temp, work = attempt
    aborted = run("abort")
    assert aborted.returncode == 1 and "RuntimeError: aborted" in aborted.stderr, aborted.stderr[-3000:]
    assert leftovers(temp) == []
    assert not work.exists()
