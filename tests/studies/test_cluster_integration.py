"""A study against real services: PostgreSQL + an MLflow server, and a multi-node Ray cluster.

1. ``disent-study run`` with ``storage.optuna`` = a PostgreSQL URL and ``tracking.mlflow_uri`` = an
   ``mlflow server`` URL, both on 127.0.0.1 (fixtures in conftest.py): Optuna's trials end up in
   PostgreSQL, every MLflow run and artifact goes through the server to its artifacts destination,
   and nothing falls back to the local sqlite/mlartifacts defaults.
2. A Ray cluster of three ``ray start`` nodes on this machine (a CPU-only head, two workers that
   declare one fake GPU each), token authentication on (``RAY_AUTH_MODE=token`` with a token of its
   own in ``RAY_AUTH_TOKEN``, never ``~/.ray/auth_token``), a study submitted with ``ray job submit``:
   every trial ran on a worker with a 0.5 GPU share (Ray's own record of its placement group) and
   saw one GPU id, and MLflow and Optuna hold every trial.

Each node has its own ``--temp-dir`` (nodes sharing one session directory also share the runtime
env agents' ``working_dir`` cache, which the workers' agents then delete under the head's job
driver) and explicit ports, so the cluster neither collides with other Ray sessions on the machine
nor with itself. ``ray stop`` would stop every Ray on the machine, so teardown signals exactly the
processes that carry this cluster's marker in their environment, and checks that none is left.
"""

from __future__ import annotations

import json
import os
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PARENT_TAG = "mlflow.parentRunId"
FINAL_FILES = {"checkpoint.pt", "config.yaml", "scores.json", "latent_traversals.png", "reconstructions.png",
               "kl_per_dim.png"}
STUDY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def disent_study(*args: str, cwd: Path, env: dict[str, str] | None = None,
                 timeout: float = STUDY_TIMEOUT_S) -> subprocess.CompletedProcess:
    command = [str(BIN / "disent-study")] if (BIN / "disent-study").exists() else [sys.executable, "-m",
                                                                                    "studies.cli"]
    env = dict(env if env is not None else os.environ)
    env.pop("RAY_ADDRESS", None)  # an embedded Ray, not whatever cluster the caller's shell points at
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def output_of(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"


def study_runs(client: MlflowClient, name: str) -> tuple:
    """(experiment, parent run, nested runs) of study ``name``."""
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no MLflow experiment {name!r}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1, [(r.info.run_name, r.data.tags) for r in parents]
    parent = parents[0]
    nested = [r for r in runs if r.data.tags.get(PARENT_TAG) == parent.info.run_id]
    assert len(nested) + 1 == len(runs), "runs that belong to no parent"
    return experiment, parent, nested


def check_tracking(client: MlflowClient, name: str, trial_ids: set[str], seeds: list[int]) -> tuple:
    """Parent run + one FINISHED nested run per trial with its tags and final artifacts."""
    experiment, parent, nested = study_runs(client, name)
    assert parent.data.tags.get("study") == name
    assert parent.info.status == "FINISHED"
    assert Counter(r.info.status for r in nested) == {"FINISHED": len(trial_ids)}, \
        [(r.data.tags.get("trial_id"), r.info.status, r.data.tags.get("failure_reason")) for r in nested]
    assert {r.data.tags["trial_id"] for r in nested} == trial_ids  # distinct: one run per trial
    assert {r.data.tags["method"] for r in nested} == {"beta_vae"}
    per_seed = len(trial_ids) // len(seeds)
    assert Counter(r.data.tags["seed"] for r in nested) == {str(s): per_seed for s in seeds}
    for run in nested:
        assert run.data.tags.get("study") == name
        assert "mig.discrete_mig" in run.data.metrics
        names = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "final")}
        assert FINAL_FILES <= names, (run.data.tags["trial_id"], sorted(names))
    return experiment, parent, nested


def check_optuna(storage: str, name: str, table: pd.DataFrame) -> None:
    """One COMPLETE Optuna trial per configuration, its value the mean objective over the seeds."""
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert Counter(t.state.name for t in trials) == {"COMPLETE": table["search.beta_vae.beta"].nunique()}
    by_beta = table.groupby("search.beta_vae.beta")["evaluation_results.mig.discrete_mig"]
    assert len(by_beta) * 2 == len(table) and (by_beta.size() == 2).all()  # two seeds per configuration
    for trial in trials:
        beta = trial.params["beta_vae.beta"]
        assert beta in by_beta.groups, (beta, list(by_beta.groups))
        assert trial.value == pytest.approx(by_beta.get_group(beta).mean())


def check_results_table(directory: Path, trials: int) -> pd.DataFrame:
    table = pd.read_parquet(directory / "results.parquet")
    assert len(table) == trials, table
    assert set(table["status"]) == {"completed"}, table[["trial_id", "status", "error"]]
    assert table["trial_id"].is_unique
    return table


# -------------------------------------------------------------------- PostgreSQL + MLflow server


def test_study_on_postgresql_and_mlflow_server(tmp_path, write_spec, postgres_url, mlflow_server):
    name = "pg_server_study"
    spec = write_spec(name)
    root = tmp_path / "runs"
    started = time.monotonic()
    done = disent_study("run", str(spec), "--root", str(root), "--set", f"storage.optuna={postgres_url}",
                        "--set", f"tracking.mlflow_uri={mlflow_server.url}", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, output_of(done)
    print(f"\nstudy on PostgreSQL + mlflow server: {elapsed:.1f} s")

    directory = root / name
    state = json.loads((directory / "study.json").read_text())
    assert state["optuna_storage"] == postgres_url
    assert state["tracking_uri"] == mlflow_server.url
    table = check_results_table(directory, trials=4)

    # Optuna: two configurations (each ran for two seeds), both COMPLETE, held by PostgreSQL
    check_optuna(postgres_url, name, table)
    import psycopg2

    url = postgres_url.removeprefix("postgresql+psycopg2://")
    user_host, database = url.split("/", 1)
    user, host_port = user_host.split("@")
    host, port = host_port.split(":")
    connection = psycopg2.connect(host=host, port=int(port), user=user, dbname=database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT t.state, count(*) FROM trials t JOIN studies s USING (study_id) "
                           "WHERE s.study_name = %s GROUP BY t.state", (name,))
            assert dict(cursor.fetchall()) == {"COMPLETE": 2}
    finally:
        connection.close()

    # MLflow: everything through the server, artifacts in its artifacts destination
    client = MlflowClient(mlflow_server.url)
    experiment, parent, nested = check_tracking(client, name, set(table["trial_id"]), seeds=[0, 1])
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
    assert "results.parquet" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    for run in nested:
        stored = list(mlflow_server.artifacts.rglob(f"{run.info.run_id}/artifacts/final/checkpoint.pt"))
        assert len(stored) == 1, f"checkpoint of run {run.info.run_id} not in {mlflow_server.artifacts}"
        assert stored[0].stat().st_size > 0

    # nothing fell back to the local defaults
    assert not (directory / "optuna.db").exists()
    assert not (root / "mlflow.db").exists()
    assert not (root / "mlartifacts").exists()
    assert not list(tmp_path.rglob("mlruns")), list(tmp_path.rglob("mlruns"))

    status = disent_study("status", str(directory), cwd=tmp_path, timeout=120)
    assert status.returncode == 0, output_of(status)
    assert "mlflow runs: 4 finished" in status.stdout, status.stdout
    assert "2 complete" in status.stdout, status.stdout


# -------------------------------------------------------------------------- multi-node Ray cluster


@dataclass
class RayCluster:
    gcs_address: str
    dashboard_url: str
    token: str
    env: dict[str, str]
    base: Path
    marker: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, authenticated: bool = True) -> dict:
        headers = self.headers if authenticated else {}
        request = urllib.request.Request(self.dashboard_url + path, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def state(self, resource: str) -> list[dict]:
        """Ray's state API (``ray list <resource> --detail``) over the dashboard's REST endpoint."""
        reply = self.get(f"/api/v0/{resource}?limit=10000&detail=1")
        assert reply["result"], reply
        return reply["data"]["result"]["result"]

    def processes(self) -> list[int]:
        """Live (not zombie) processes of this cluster: the ones whose environment carries its marker."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2] != "Z" and self.marker.encode() in environ.split(b"\0"):
                found.append(int(entry))
        return found


def _ray(cluster_env: dict[str, str], *args: str, log: Path, timeout: float = 120) -> None:
    with open(log, "ab") as out:
        done = subprocess.run([str(BIN / "ray"), *args], env=cluster_env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"`ray {' '.join(args)}` failed ({done.returncode}):\n{log.read_text()[-4000:]}")


def _stop_cluster(cluster: RayCluster, grace_s: float = 5) -> list[int]:
    """SIGTERM every process of the cluster, SIGKILL what outlives ``grace_s``; pids still alive after.

    What ``ray stop --force`` does, but only to this cluster: gcs_server and the raylets take longer
    than a few seconds to honour SIGTERM, and their state is thrown away anyway.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in cluster.processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 10)
        while time.monotonic() < deadline and cluster.processes():
            time.sleep(0.3)
    return cluster.processes()


@pytest.fixture
def ray_cluster() -> Iterator[RayCluster]:
    """A head (1 CPU, 0 GPU, dashboard) and two workers (2 CPUs, 1 fake GPU each) on this machine."""
    # short path: Ray's unix sockets live under <temp dir>/session_<date>_<pid>/sockets/ (108-byte limit)
    base = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    marker = f"DISENT_TEST_RAY_CLUSTER={uuid.uuid4().hex}"
    token = uuid.uuid4().hex + uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        marker.split("=")[0]: marker.split("=")[1],
    })
    port, dashboard_port = free_port(), free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}", token, env, base, marker)
    object_store = str(200 * 1024**2)
    try:
        log = base / "head.log"
        _ray(env, "start", "--head", "--port", str(port), "--num-cpus", "1", "--num-gpus", "0",
             "--include-dashboard=true", "--dashboard-host", "127.0.0.1",
             "--dashboard-port", str(dashboard_port),
             "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port()),
             "--temp-dir", str(base / "head"), "--object-store-memory", object_store, "--disable-usage-stats",
             log=log)
        # one at a time: two workers started together crashed here (raylet "bind: Address already in use")
        for i in (1, 2):
            log = base / f"worker{i}.log"
            _ray(env, "start", "--address", cluster.gcs_address, "--num-cpus", "2", "--num-gpus", "1",
                 "--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(base / f"w{i}"),
                 "--object-store-memory", object_store, "--disable-usage-stats", log=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                alive = [n for n in cluster.state("nodes") if n["state"] == "ALIVE"]
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                alive = []
            if len(alive) == 3:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(alive)} of 3 Ray nodes alive after 60 s")
            time.sleep(1)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        left = _stop_cluster(cluster)
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"cannot start the Ray cluster: {exc}" + (f"\nprocesses left: {left}" if left else ""))
    try:
        yield cluster
    finally:
        started = time.monotonic()
        left = _stop_cluster(cluster)
        print(f"\nray cluster stopped in {time.monotonic() - started:.1f} s")
        if not os.environ.get("DISENT_KEEP_RAY_LOGS"):  # set it to look at the nodes' logs under /tmp/rc*
            shutil.rmtree(base, ignore_errors=True)
        assert not left, f"processes of the test's Ray cluster still alive: {left}"


def test_study_submitted_to_multi_node_cluster(tmp_path, write_spec, ray_cluster):
    cluster = ray_cluster
    # token auth is really on: the Jobs API refuses a request without the token
    with pytest.raises(urllib.error.HTTPError) as refused:
        cluster.get("/api/jobs/", authenticated=False)
    assert refused.value.code in (401, 403)

    nodes = cluster.state("nodes")
    gpu_nodes = {n["node_id"] for n in nodes if n["resources_total"].get("GPU", 0) == 1}
    head = [n for n in nodes if n["is_head_node"]]
    assert len(gpu_nodes) == 2 and len(head) == 1 and head[0]["node_id"] not in gpu_nodes, nodes

    name = "multinode_study"
    job_dir = tmp_path / "job"  # the job's working_dir: just the spec, so the upload is tiny
    # population 1: each trial is its own Tune trial, whose placement this test checks
    write_spec(name, directory=job_dir, resources={"cpu": 1, "gpu": 0.5, "population": 1},
               search={"algorithm": "random", "num_trials": 2, "max_concurrent": 4, "seed": 0})
    (job_dir / f"{name}.yaml").rename(job_dir / "spec.yaml")
    root = tmp_path / "runs"
    submission_id = f"disent-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    submit = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard_url,
         "--submission-id", submission_id, "--working-dir", str(job_dir), "--no-wait", "--",
         str(BIN / "disent-study"), "run", "spec.yaml", "--root", str(root)],
        env=cluster.env, capture_output=True, text=True, timeout=120,
    )
    assert submit.returncode == 0, output_of(submit)

    from ray.job_submission import JobStatus, JobSubmissionClient

    jobs = JobSubmissionClient(cluster.dashboard_url, headers=cluster.headers)
    deadline = time.monotonic() + STUDY_TIMEOUT_S
    while (status := jobs.get_job_status(submission_id)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                                  JobStatus.STOPPED):
        assert time.monotonic() < deadline, f"job still {status} after {STUDY_TIMEOUT_S} s:\n" \
                                            f"{jobs.get_job_logs(submission_id)[-6000:]}"
        time.sleep(2)
    logs = jobs.get_job_logs(submission_id)
    assert status == JobStatus.SUCCEEDED, f"job {status}:\n{logs[-8000:]}"
    print(f"\nray job submit -> SUCCEEDED in {time.monotonic() - started:.1f} s")

    directory = root / name
    table = check_results_table(directory, trials=4)
    trial_ids = set(table["trial_id"])

    # every report of every trial: one GPU id visible (a 0.5 share still shows GPU id 0 of its node)
    trial_pids: dict[str, set[int]] = {}
    for trial_id in trial_ids:
        results = [json.loads(line) for line in
                   (directory / "tune" / f"trial_{trial_id}" / "result.json").read_text().splitlines()]
        assert [r["step"] for r in results] == [10, 20], trial_id
        for result in results:
            assert result["resources/gpus"] == 1.0, (trial_id, result["resources/gpus"])
            assert result["resources/cuda_visible_devices"] == "0", (trial_id, result)
        trial_pids[trial_id] = {r["pid"] for r in results}

    # Ray's record of the trial actors: each reserved CPU 1 + GPU 0.5 in its placement group on a GPU worker
    # Tune's trial actors: a function trainable (ImplicitFunc), or a class trainable given resources
    # (with_resources.<locals>.ResourceTrainable)
    trial_classes = ("ImplicitFunc", "ResourceTrainable")
    actors = {a["pid"]: a for a in cluster.state("actors") if a["class_name"].endswith(trial_classes)}
    groups = {g["placement_group_id"]: g for g in cluster.state("placement_groups")}
    used_nodes = Counter()
    for trial_id, pids in trial_pids.items():
        for pid in pids:
            actor = actors.get(pid)
            assert actor is not None, f"trial {trial_id} ran in pid {pid}, which is no Tune trial actor"
            bundles = groups[actor["placement_group_id"]]["bundles"]
            assert [b["unit_resources"] for b in bundles] == [{"CPU": 1.0, "GPU": 0.5}], bundles
            assert actor["node_id"] in gpu_nodes and bundles[0]["node_id"] == actor["node_id"]
            used_nodes[actor["node_id"][:8]] += 1
    print(f"trials per worker node: {dict(used_nodes)}")

    # MLflow (sqlite under the root, written by the driver on the head) and Optuna (sqlite in the study dir)
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    check_tracking(client, name, trial_ids, seeds=[0, 1])
    check_optuna(f"sqlite:///{directory / 'optuna.db'}", name, table)
