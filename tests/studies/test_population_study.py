"""Studies whose Tune trials hold populations: the same results as one member per trial, and the
same accounting when a worker or the driver dies."""

from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from study_helpers import (
    TINY,
    checkpointed_and_running,
    finished_and_running,
    nested_runs,
    optuna_states,
    run_cli,
    start_study,
    tune_results,
    wait_until,
    write_spec,
)

pytestmark = pytest.mark.slow

EXPLODING = {"kind": "stages", "values": [4.0, 1e39], "boundaries": [10]}
"""beta = 1e39 from step 10: beta * KL overflows fp32, so that member diverges at step 10."""
LOSSES = ["final.loss/loss", "final.loss/recon", "final.loss/kl"]
MIG = "evaluation_results.mig.discrete_mig"


def _beta_study(tmp_path, name: str, population: int):
    return write_spec(
        tmp_path, name,
        methods={"beta_vae": {"beta": {"search": "grid", "values": [1.0, 4.0, EXPLODING]}}},
        seeds=[0, 1],
        search={"algorithm": "grid", "max_concurrent": 2},
        resources={"cpu": 1, "population": population},
        tracking={"log_model": population > 1},
    )


def _by_member(table: pd.DataFrame) -> pd.DataFrame:
    key = table["search.beta_vae.beta"].astype(str) + "/" + table["seed"].astype(str)
    return table.assign(member=key).set_index("member").sort_index()


def test_a_population_study_gives_the_results_of_one_member_per_trial(tmp_path):
    root = tmp_path / "runs"
    for name, population in (("alone", 1), ("fused", 4)):
        done = run_cli("run", str(_beta_study(tmp_path, name, population)), "--root", str(root))
        assert done.returncode == 0, done.stderr[-3000:]
    alone = _by_member(pd.read_parquet(root / "alone" / "results.parquet"))
    fused = _by_member(pd.read_parquet(root / "fused" / "results.parquet"))

    assert list(fused.index) == list(alone.index) and len(fused) == 6
    assert list(fused["status"]) == list(alone["status"])
    assert (fused["status"] == "failed").sum() == 2  # the exploding beta, at both seeds
    failed = fused[fused["status"] == "failed"]
    assert all("diverged at step 10" in error for error in failed["error"])
    assert (failed["step"] == 10).all()
    completed = fused["status"] == "completed"

    def column(table: pd.DataFrame, name: str) -> np.ndarray:
        return table.loc[completed, name].astype(float).to_numpy()

    for name in LOSSES:
        np.testing.assert_allclose(column(fused, name), column(alone, name), rtol=1e-4, atol=1e-6)
    assert list(column(fused, "final.active_dims")) == list(column(alone, "final.active_dims"))
    # MIG bins the codes (20 bins per dimension): a code moved by rounding can change bin, which
    # moves the score by about 1e-5 at these tiny trainings (measured 7.7e-6 at most)
    np.testing.assert_allclose(column(fused, MIG), column(alone, MIG), atol=1e-4)
    # 6 members packed 4 + 2 in two Tune trials; one member per Tune trial when alone
    assert sorted(fused["population"].value_counts()) == [2, 4]
    assert alone["population"].isna().all()
    assert (fused["trial_id"].str.rsplit("-", n=1).str[0] == fused["population"]).all()

    # each member is its own MLflow run and each configuration its own Optuna trial, as when alone
    runs = nested_runs(root, "fused")
    assert sorted(r.data.tags["trial_id"] for r in runs) == sorted(fused["trial_id"])
    assert sorted(r.info.status for r in runs) == ["FAILED"] * 2 + ["FINISHED"] * 4
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run in runs:
        assert run.data.tags["population"] in set(fused["population"])
        if run.info.status == "FAILED":
            assert "diverged at step 10" in run.data.tags["failure_reason"]
            continue
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss/recon")] == [10, 20]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "final")}
        assert {"final/checkpoint.pt", "final/latent_traversals.png", "final/scores.json"} <= artifacts
        logged = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
        assert len(logged) == 1  # the member's own model (tracking.log_model)
    assert optuna_states(root, "fused") == optuna_states(root, "alone") == {"COMPLETE": 2, "FAIL": 1}

    status = run_cli("status", str(root / "fused"))
    assert status.returncode == 0, status.stderr
    assert "population" in status.stdout and "2 failed, 4 finished" in status.stdout


def test_a_killed_worker_resumes_the_whole_population_from_its_checkpoint(tmp_path):
    train = {**TINY["train"], "steps": 120, "report_every": 10, "checkpoint_every": 30}
    spec = write_spec(tmp_path, "killworker", train=train,
                      methods={"beta_vae": {"beta": {"search": "grid", "values": [1.0, 4.0]}}},
                      search={"algorithm": "grid"}, resources={"cpu": 1, "population": 2})
    root = tmp_path / "runs"
    proc = start_study(spec, root)
    study_dir = root / "killworker"

    wait_until(lambda: checkpointed_and_running(study_dir, 40, 100), 300,
               "the population passed its first checkpoint", proc)
    os.kill(next(iter(tune_results(study_dir).values()))[-1]["pid"], signal.SIGKILL)
    _, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]

    (trial_id, lines), = tune_results(study_dir).items()
    steps = [r["step"] for r in lines]
    assert steps[-1] == 120 and len({r["pid"] for r in lines}) == 2
    restart = next(i for i in range(1, len(lines)) if lines[i]["pid"] != lines[i - 1]["pid"])
    resumed_from = steps[restart] - 10
    assert resumed_from % 30 == 0 and resumed_from >= 30, steps  # from a checkpoint, not from scratch
    table = pd.read_parquet(study_dir / "results.parquet")
    assert sorted(table["trial_id"]) == [f"{trial_id}-0", f"{trial_id}-1"]
    assert set(table["status"]) == {"completed"}
    runs = nested_runs(root, "killworker")
    assert sorted((r.data.tags["trial_id"], r.info.status) for r in runs) == [
        (f"{trial_id}-0", "FINISHED"), (f"{trial_id}-1", "FINISHED")]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run in runs:  # every step once: none lost, none trained again logged twice
        logged = [m.step for m in client.get_metric_history(run.info.run_id, "loss/loss")]
        assert sorted(logged) == list(range(10, 121, 10)), (logged, resumed_from)
    assert optuna_states(root, "killworker") == {"COMPLETE": 2}


def test_a_killed_driver_then_resume_accounts_for_every_member_once(tmp_path):
    train = {**TINY["train"], "steps": 60, "report_every": 10, "checkpoint_every": 20}
    betas = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
    spec = write_spec(
        tmp_path, "killdriver", train=train,
        methods={"beta_vae": {"beta": {"search": "grid", "values": betas}}},
        search={"algorithm": "grid", "max_concurrent": 2}, resources={"cpu": 1, "population": 2},
    )
    root = tmp_path / "runs"
    proc = start_study(spec, root)
    study_dir = root / "killdriver"

    wait_until(lambda: finished_and_running(study_dir, 60), 300,
               "one population finished and another started", proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait(timeout=30)

    done = run_cli("resume", str(study_dir), timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]

    table = pd.read_parquet(study_dir / "results.parquet")
    assert len(table) == 6 and set(table["status"]) == {"completed"}
    assert sorted(table["train_config.method.beta"]) == betas
    assert table["population"].notna().all()
    runs = nested_runs(root, "killdriver")
    finished = [r.data.tags["trial_id"] for r in runs if r.info.status == "FINISHED"]
    assert sorted(finished) == sorted(table["trial_id"])  # each member has exactly one finished run
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    for run in runs:
        if run.info.status == "FINISHED":
            logged = [m.step for m in client.get_metric_history(run.info.run_id, "loss/loss")]
            assert sorted(logged) == list(range(10, 61, 10)), logged
    states = optuna_states(root, "killdriver")
    assert states.get("RUNNING", 0) == 0 and states["COMPLETE"] == 6
