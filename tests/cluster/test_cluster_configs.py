"""The cluster configs in cluster/: Ray's own checks for the `ray up` YAMLs, structure of the KubeRay
manifests, the shell scripts and the `ray submit` launcher. Nothing here contacts a cloud."""

from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
RAY_UP_YAMLS = ["aws.yaml", "gcp.yaml", "local.yaml"]
CLOUD_YAMLS = ["aws.yaml", "gcp.yaml"]
REMOTE_CHECKOUT = "~/disent-studies"


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _prepared(name: str) -> dict:
    config = prepare_config(_load(name))  # what `ray up` does before talking to the provider
    validate_config(config)
    return config


def _start_commands(config: dict) -> list[str]:
    return config["head_start_ray_commands"] + config["worker_start_ray_commands"]


# ---------------------------------------------------------------- ray up YAMLs


@pytest.mark.parametrize("name", RAY_UP_YAMLS)
def test_ray_up_yaml_passes_rays_prepare_and_validate(name):
    config = _prepared(name)
    assert config["cluster_name"] == "disent-studies"
    assert config["head_node_type"] in config["available_node_types"]


def test_validate_config_has_teeth():
    config = prepare_config(_load("aws.yaml"))
    broken = copy.deepcopy(config)
    broken["not_a_ray_key"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_a10g"]["resources"]["GPU"] = 0.5  # schema: integers
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


@pytest.mark.parametrize("name", CLOUD_YAMLS)
def test_cloud_head_runs_no_trials_and_gpu_workers_autoscale(name):
    config = _prepared(name)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert workers
    for node_type in workers.values():
        assert node_type["resources"]["GPU"] >= 1
        # room for two {cpu: 4, gpu: 0.5} trials per GPU
        assert node_type["resources"]["CPU"] >= 2 * 4 * node_type["resources"]["GPU"]
        assert node_type["min_workers"] == 0 < node_type["max_workers"] <= config["max_workers"]


def test_aws_workers_get_an_instance_profile_the_head_may_pass():
    """Ray attaches `ray-autoscaler-v1` to the head only; the workers name it for their S3 checkpoints,
    and the README gives the head's role iam:PassRole on it (without it no worker launches)."""
    config = _prepared("aws.yaml")
    head = config["head_node_type"]
    types = config["available_node_types"]
    assert "IamInstanceProfile" not in types[head]["node_config"]
    for name, node_type in types.items():
        if name != head:
            assert node_type["node_config"]["IamInstanceProfile"] == {"Name": "ray-autoscaler-v1"}, name
    readme = (CLUSTER / "README.md").read_text()
    assert "--role-name ray-autoscaler-v1" in readme
    assert '"iam:PassRole", "Resource": "arn:aws:iam::\'"$ACCOUNT"\':role/ray-autoscaler-v1"' in readme
    assert "<your-account-id>" not in (CLUSTER / "aws.yaml").read_text()


def test_local_yaml_follows_the_local_provider_rules():
    raw = _load("local.yaml")
    assert raw["provider"]["type"] == "local"
    assert {"head_ip", "worker_ips"} <= set(raw["provider"])
    assert "available_node_types" not in raw and "head_node_type" not in raw
    config = _prepared("local.yaml")
    assert list(config["available_node_types"]) == ["local.cluster.node"]
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in head_start and "--num-gpus=0" in head_start


@pytest.mark.parametrize("name", RAY_UP_YAMLS)
def test_token_auth_and_restartable_start_commands(name):
    config = _prepared(name)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert config["file_mounts"][REMOTE_CHECKOUT] == "."
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert config[key][0] == "ray stop"
    starts = [c for c in _start_commands(config) if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assert "RAY_AUTH_MODE=token ray start" in command
    assert any("--head" in c and "--dashboard-host=0.0.0.0" in c for c in starts)
    assert any("--address=$RAY_HEAD_IP:6379" in c for c in starts)


@pytest.mark.parametrize("name", RAY_UP_YAMLS)
def test_setup_installs_the_project_and_starts_the_head_services(name):
    config = _prepared(name)  # prepare_config prepends setup_commands to head/worker setup
    head = " ".join(config["head_setup_commands"])
    worker = " ".join(config["worker_setup_commands"])
    assert "cluster/scripts/node_setup.sh head" in head
    assert "cluster/scripts/head_services.sh install" in head
    assert "cluster/scripts/node_setup.sh worker" in worker
    assert "head_services.sh" not in worker
    assert "head_services.sh restart" in " ".join(config["head_start_ray_commands"])
    # MLflow artifacts and Tune checkpoints go to storage that every node sees
    locations = re.findall(r"DISENT_(?:ARTIFACTS|CHECKPOINTS)=(\S+)", head)
    assert len(locations) == 2
    for location in locations:
        assert location.strip("'").startswith(("s3://", "gs://", "/mnt/shared/")), location


@pytest.mark.parametrize("name", RAY_UP_YAMLS)
def test_commands_only_reference_scripts_in_the_repo(name):
    text = (CLUSTER / name).read_text()
    paths = set(re.findall(re.escape(REMOTE_CHECKOUT) + r"/([\w./-]+\.sh)", text))
    assert paths
    for path in paths:
        assert (ROOT / path).is_file(), path


@pytest.mark.parametrize("name", RAY_UP_YAMLS)
def test_head_services_command_stops_on_placeholders(name, tmp_path):
    """Run the YAML's own install command (checkout path mapped to this repo): the shell quoting of
    the placeholders works and setup stops with a message before touching the machine."""
    config = _prepared(name)
    (command,) = [c for c in config["head_setup_commands"] if "head_services.sh install" in c]
    command = command.replace(REMOTE_CHECKOUT, str(ROOT))
    if name == "local.yaml":  # no placeholders there: check the guard with one
        command = command.replace("/mnt/shared/disent/studies", "'<nfs-path>'")
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 2, out.stderr
    assert "placeholder" in out.stderr
    assert not (tmp_path / ".disent").exists()


# ---------------------------------------------------------------- scripts


@pytest.mark.parametrize("script", sorted(str(p.relative_to(CLUSTER)) for p in CLUSTER.rglob("*.sh")))
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(CLUSTER / script)], check=True)


def test_mlflow_server_flags():
    text = (CLUSTER / "scripts" / "head_services.sh").read_text()
    for flag in ("--app-name basic-auth", "--backend-store-uri postgresql://", "--artifacts-destination",
                 "--host $ip", "--allowed-hosts", "--workers 1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false",
                 "EnvironmentFile=$STATE/mlflow_server.env"):
        assert flag in text, flag
    assert "DISENT_OPTUNA_STORAGE=postgresql+psycopg2://" in text


def test_node_setup_installs_the_project_with_token_auth():
    text = (CLUSTER / "scripts" / "node_setup.sh").read_text()
    assert '-e "$PROJECT_DIR" psycopg2-binary' in text
    assert "export RAY_AUTH_MODE=token" in text
    assert "download.pytorch.org/whl/cpu" in text  # CPU torch on the head only


# ---------------------------------------------------------------- ray submit launcher


@pytest.fixture(scope="module")
def launcher():
    spec = importlib.util.spec_from_file_location("submit_study", CLUSTER / "submit_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launcher_adds_cluster_defaults_the_user_did_not_set(launcher):
    env_file = {"DISENT_OPTUNA_STORAGE": "postgresql+psycopg2://disent@localhost:5432/optuna",
                "DISENT_MLFLOW_URI": "http://10.0.0.5:5000",
                "DISENT_CHECKPOINTS": "s3://b/studies"}
    argv = ["run", "studies/catalog/quickstart.yaml", "--set", "tracking.mlflow_uri=http://other:5000",
            "--set=search.max_concurrent=4"]
    env = {"DISENT_CHECKPOINTS": "/mnt/shared/s", "DISENT_RUNS_ROOT": "/data/runs"}
    out = launcher.with_cluster_defaults(argv, env, env_file)
    assert out[: len(argv)] == argv
    assert out[len(argv):] == ["--autoscaling", "--root", "/data/runs",
                               "--set", "storage.optuna=postgresql+psycopg2://disent@localhost:5432/optuna",
                               "--set", "storage.checkpoints=/mnt/shared/s"]  # environment beats the file
    assert launcher.keys_already_set(out) == {"tracking.mlflow_uri", "search.max_concurrent",
                                              "storage.optuna", "storage.checkpoints"}
    # the user's --root wins; the default root is absolute (the job's working directory is temporary)
    assert launcher.with_cluster_defaults([*argv, "--root=/r"], {}, {})[len(argv) + 1:] == ["--autoscaling"]
    default = launcher.with_cluster_defaults(["run", "x.yaml"], {}, {})
    assert default[3] == "--root" and Path(default[4]).is_absolute()
    assert launcher.with_cluster_defaults(["resume", "d"], env, env_file) == ["resume", "d", "--autoscaling"]
    given = launcher.with_cluster_defaults(["run", "x.yaml", "--autoscaling"], {}, {})
    assert given.count("--autoscaling") == 1
    assert launcher.with_cluster_defaults(["datasets", "list"], {}, env_file) == ["datasets", "list"]
    assert launcher.with_cluster_defaults(["status", "d"], env, env_file) == ["status", "d"]


def test_launcher_argv_parses_with_the_cli(launcher):
    from studies.cli import build_parser

    argv = launcher.with_cluster_defaults(
        ["run", "studies/catalog/quickstart.yaml"], {},
        {"DISENT_OPTUNA_STORAGE": "postgresql+psycopg2://disent@localhost:5432/optuna",
         "DISENT_MLFLOW_URI": "http://10.0.0.5:5000", "DISENT_CHECKPOINTS": "s3://b/studies"})
    args = build_parser().parse_args(argv)
    assert args.command == "run" and args.root.is_absolute() and args.autoscaling
    assert sorted(args.set) == ["storage.checkpoints=s3://b/studies",
                                "storage.optuna=postgresql+psycopg2://disent@localhost:5432/optuna",
                                "tracking.mlflow_uri=http://10.0.0.5:5000"]


def test_launcher_reads_the_env_file_written_by_head_services(launcher, tmp_path):
    path = tmp_path / "cluster.env"
    path.write_text("# comment\nDISENT_OPTUNA_STORAGE=postgresql+psycopg2://disent@localhost:5432/optuna\n\n"
                    "DISENT_MLFLOW_URI='http://10.0.0.5:5000'\n")
    assert launcher.read_env_file(path) == {
        "DISENT_OPTUNA_STORAGE": "postgresql+psycopg2://disent@localhost:5432/optuna",
        "DISENT_MLFLOW_URI": "http://10.0.0.5:5000",
    }
    assert launcher.read_env_file(tmp_path / "missing.env") == {}
    # dotenv syntax: export prefix, double quotes keep '#', inline comments, no ${VAR} expansion
    path.write_text('export DISENT_CHECKPOINTS="s3://b/a#b"  # bucket\n'
                    "DISENT_RUNS_ROOT=${HOME}/runs\nNO_VALUE\n")
    assert launcher.read_env_file(path) == {"DISENT_CHECKPOINTS": "s3://b/a#b",
                                            "DISENT_RUNS_ROOT": "${HOME}/runs"}
    keys = set(re.findall(r"^(DISENT_\w+)=", (CLUSTER / "scripts" / "head_services.sh").read_text(), re.M))
    assert keys == set(launcher.CLUSTER_DEFAULTS)


def test_runtime_env_for_job_submission():
    from ray.runtime_env import RuntimeEnv

    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    RuntimeEnv(**env)
    assert env["working_dir"] == "."
    assert {".venv", "runs", "data", ".git"} <= set(env["excludes"])


# ---------------------------------------------------------------- KubeRay


def _manifest(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / "kuberay" / name).read_text()) if d]


def _ray_cluster_specs() -> list[dict]:
    (cluster,) = _manifest("raycluster.yaml")
    (job,) = _manifest("rayjob.yaml")
    assert cluster["apiVersion"] == job["apiVersion"] == "ray.io/v1"
    assert (cluster["kind"], job["kind"]) == ("RayCluster", "RayJob")
    return [cluster["spec"], job["spec"]["rayClusterSpec"]]


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


@pytest.mark.parametrize("index", [0, 1], ids=["RayCluster", "RayJob"])
def test_kuberay_head_runs_no_trials_and_workers_have_gpus(index):
    spec = _ray_cluster_specs()[index]
    major_minor = ".".join(ray.__version__.split(".")[:2])
    assert spec["rayVersion"].startswith(major_minor)
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # a string, as KubeRay wants
    assert all("nvidia.com/gpu" not in c["resources"].get("limits", {}) for c in _containers(head))
    assert spec["workerGroupSpecs"]
    for group in spec["workerGroupSpecs"]:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        for container in _containers(group):
            assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        claims = {v["persistentVolumeClaim"]["claimName"]
                  for v in group["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"disent-shared"}


def test_kuberay_cluster_and_job_describe_the_same_cluster():
    cluster, job = _ray_cluster_specs()
    for key in ("rayVersion", "authOptions", "headGroupSpec", "workerGroupSpecs"):
        assert cluster[key] == job[key], key


def test_rayjob_entrypoint_runs_a_catalog_study_on_the_cluster_services():
    (job,) = _manifest("rayjob.yaml")
    entrypoint = job["spec"]["entrypoint"]
    assert entrypoint.startswith("disent-study run --autoscaling studies/catalog/")  # GPU workers from 0
    sets = dict(s.split("=", 1) for s in re.findall(r"--set (\S+)", entrypoint))
    assert sets["storage.optuna"].startswith("postgresql+psycopg2://")
    assert sets["tracking.mlflow_uri"].startswith("http://")
    assert sets["storage.checkpoints"].startswith("/mnt/shared/")
    assert re.search(r"--root (/mnt/shared/\S+)", entrypoint)  # study directory outlives the cluster
    assert not set("&|;$`") & set(entrypoint)  # the submitter pod passes it through a shell

    services = {d["metadata"]["name"] for d in _manifest("services.yaml") if d["kind"] == "Service"}
    assert re.search(r"@([\w-]+):5432/", sets["storage.optuna"]).group(1) in services
    assert re.search(r"//([\w-]+):5000", sets["tracking.mlflow_uri"]).group(1) in services

    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    workdir = re.search(r"^WORKDIR (\S+)", (CLUSTER / "kuberay" / "Dockerfile").read_text(), re.M).group(1)
    assert runtime_env["working_dir"] == workdir


def test_kuberay_services_and_image():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _manifest("services.yaml")}
    assert docs[("PersistentVolumeClaim", "disent-shared")]["spec"]["accessModes"] == ["ReadWriteMany"]
    (mlflow,) = _containers(docs[("Deployment", "disent-mlflow")]["spec"])
    command = " ".join(mlflow["command"])
    for flag in ("--app-name basic-auth", "--backend-store-uri postgresql://", "--artifacts-destination",
                 "--host 0.0.0.0", "--allowed-hosts", "--workers 1"):
        assert flag in command, flag
    assert "disent-mlflow" in command.split("--allowed-hosts ")[1]
    assert {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"} in mlflow["env"]
    env = {e["name"]: e for e in mlflow["env"]}
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                 "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "disent-mlflow-auth", name
    auth_ini = docs[("ConfigMap", "disent-mlflow-auth")]["data"]["basic_auth.ini"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].endswith("/basic_auth.ini")
    assert "database_uri = postgresql://disent@disent-postgres:5432/mlflow_auth" in auth_ini
    init_sql = docs[("ConfigMap", "disent-postgres-init")]["data"]["10-mlflow.sql"]
    assert "CREATE DATABASE mlflow_auth" in init_sql

    images = {mlflow["image"]}
    for spec in _ray_cluster_specs():
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            images |= {c["image"] for c in _containers(group)}
    assert len(images) == 1
    dockerfile = (CLUSTER / "kuberay" / "Dockerfile").read_text()
    assert f"rayproject/ray:{ray.__version__}-" in dockerfile


# ---------------------------------------------------------------- catalog references


def test_catalog_specs_referenced_by_the_cluster_docs_exist():
    """Every studies/catalog/*.yaml named in cluster/ must exist (fails until the catalog lands)."""
    referenced = set()
    for path in CLUSTER.rglob("*"):
        if path.is_file() and path.suffix in {".md", ".yaml", ".py", ".sh", ""}:
            referenced |= set(re.findall(r"studies/catalog/[\w.-]+?\.yaml", path.read_text()))
    assert {"studies/catalog/devae_tolerance.yaml", "studies/catalog/quickstart.yaml"} <= referenced
    missing = sorted(p for p in referenced if not (ROOT / p).is_file())
    assert not missing, f"referenced in cluster/ but missing: {missing}"
