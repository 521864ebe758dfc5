"""Nothing in cluster/ exposes MLflow or PostgreSQL, or leaks their passwords.

Scans of every file under cluster/:

- each ``mlflow server`` invocation (shell, systemd unit, docs, Kubernetes containers) runs MLflow's
  basic-auth app and binds no wildcard address, except inside a Kubernetes pod that a NetworkPolicy
  guards (there ``kubectl port-forward`` needs the pod's loopback and the Ray pods its pod IP);
- no password on a command line: ``psql -c`` with ``PASSWORD``, ``--password``,
  ``kubectl --from-literal=password``, an inline ``PGPASSWORD=`` or ``MLFLOW_TRACKING_PASSWORD=``;
- no placeholder password and no Kubernetes Secret with literal data ships (``secrets.sh`` makes
  them);
- the NetworkPolicies select the MLflow and PostgreSQL pods and admit only the Ray pods (and
  MLflow, to PostgreSQL), evaluated on the pods the manifests create.

Each scan also runs on known-bad lines, so that it is shown to catch them. Then the scripts run
against stand-ins for ``sudo``, ``psql``, ``systemctl``, ``curl``, ``hostname`` and ``kubectl``:
no generated secret reaches any command's arguments, the credential files are readable by the user
only, and MLflow's own configuration readers get what they need. Nothing here contacts a cluster.
"""

from __future__ import annotations

import base64
import configparser
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
KUBERAY = CLUSTER / "kuberay"
TEXT_SUFFIXES = {".md", ".yaml", ".yml", ".sh", ".py", ".ini", ".toml", ".txt", ".env", ""}
WILDCARD_HOST = re.compile(r"(?:--host|-h)[ =]['\"]?(?:0\.0\.0\.0|::|\[::\]|\*)(?![\w.:])")
SECRET_ON_COMMAND_LINE = {
    "psql -c with a password": re.compile(r"\bpsql\b[^\n]*\s(?:-\w*c|--command)[ =][^\n]*\bpassword\b", re.I),
    "--password VALUE": re.compile(r"--password[ =](?!\s*$)\S"),
    "kubectl --from-literal=password": re.compile(r"--from-literal[ =]\S*pass", re.I),
    "inline PGPASSWORD=": re.compile(r"\bPGPASSWORD=\S"),
    "inline MLFLOW_TRACKING_PASSWORD=": re.compile(r"\bMLFLOW_TRACKING_PASSWORD=\S"),
}
PLACEHOLDER_PASSWORD = re.compile(
    r"(?i)(?:password|passwd|secret[\w-]*)[\"']?\s*[:=]\s*[\"']?"
    r"(?:<[^>\n]*>|change-?me|changeit|secret|password|\.\.\.)[\"']?\s*$"
)
RAY_POD_TEMPLATES = ("raycluster.yaml", "rayjob.yaml")
PART_OF = {"app.kubernetes.io/part-of": "disent-studies"}


def cluster_files() -> list[Path]:
    """Every text file under cluster/ (scripts, manifests, docs, the Dockerfile)."""
    return sorted(p for p in CLUSTER.rglob("*")
                  if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name.startswith("Dockerfile")))


def logical_lines(text: str) -> list[str]:
    """Lines with shell continuations (``\\`` at the end) joined."""
    return re.sub(r"\\\n\s*", " ", text).splitlines()


@dataclass(frozen=True)
class Invocation:
    where: str
    command: str
    pod_labels: dict | None  # the pod's labels for a Kubernetes container, else None


def text_invocations(path: Path, text: str) -> list[Invocation]:
    """``mlflow server ...`` with options, on one logical line of a text file."""
    found = []
    for line in logical_lines(text):
        at = line.find("mlflow server")
        if at >= 0 and " --" in line[at:]:
            found.append(Invocation(str(path.relative_to(ROOT)), line[at:], None))
    return found


def manifests(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and "kind" in d]


def pod_templates(doc: dict) -> list[dict]:
    """The pod templates of a Deployment/StatefulSet/Job/RayCluster/RayJob (a Pod is its own)."""
    if doc["kind"] == "Pod":
        return [doc]
    spec = doc.get("spec") or {}
    if doc["kind"] == "RayJob":
        spec = spec.get("rayClusterSpec") or {}
    if doc["kind"] in ("RayCluster", "RayJob"):
        groups = [spec.get("headGroupSpec") or {}, *(spec.get("workerGroupSpecs") or [])]
        return [g["template"] for g in groups if "template" in g]
    return [spec["template"]] if "template" in spec else []


def kubernetes_invocations(path: Path) -> list[Invocation]:
    found = []
    for doc in manifests(path):
        for template in pod_templates(doc):
            labels = (template.get("metadata") or {}).get("labels") or {}
            for container in (template.get("spec") or {}).get("containers", []):
                argv = [str(a) for a in [*container.get("command", []), *container.get("args", [])]]
                if any(a.endswith("mlflow") for a in argv[:1]) and "server" in argv[:2]:
                    where = f"{path.relative_to(ROOT)}: {doc['kind']} {doc['metadata']['name']}"
                    found.append(Invocation(where, " ".join(argv), labels))
    return found


def all_invocations() -> list[Invocation]:
    found = []
    for path in cluster_files():
        found += text_invocations(path, path.read_text())
        if path.suffix == ".yaml" and path.parent == KUBERAY:
            found += kubernetes_invocations(path)
    return found


# ---------------------------------------------------------------- label selectors, NetworkPolicies


def selects(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics for matchLabels and matchExpressions."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def network_policies() -> list[dict]:
    return [d for p in sorted(KUBERAY.glob("*.yaml")) for d in manifests(p) if d["kind"] == "NetworkPolicy"]


def guarded(labels: dict, policies: list[dict]) -> list[dict]:
    """The ingress policies that select a pod with ``labels``."""
    return [p for p in policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], labels)]


def admitted(source: dict, target: dict, port: int, policies: list[dict]) -> bool:
    """Whether a pod labelled ``source`` may open ``port`` on a pod labelled ``target`` (same namespace)."""
    applying = guarded(target, policies)
    if not applying:
        return True  # no policy selects it: Kubernetes admits everything
    for policy in applying:
        for rule in policy["spec"].get("ingress") or []:
            ports = [p.get("port") for p in rule.get("ports") or []]
            if ports and port not in ports:
                continue
            peers = rule.get("from")
            if not peers:
                return True  # a rule without `from` admits every source
            for peer in peers:
                if "ipBlock" in peer or "namespaceSelector" in peer:
                    return True  # reaches beyond this namespace's pods: counts as open
                if selects(peer["podSelector"], source):
                    return True
    return False


def service_pods() -> dict[str, dict]:
    """Deployment name -> its pods' labels, from services.yaml."""
    return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in manifests(KUBERAY / "services.yaml") if d["kind"] == "Deployment"}


def ray_pods() -> dict[str, dict]:
    """The labels of the Ray pods KubeRay creates from raycluster.yaml / rayjob.yaml."""
    pods = {}
    for name in RAY_POD_TEMPLATES:
        (doc,) = manifests(KUBERAY / name)
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        head = spec["headGroupSpec"]["template"].get("metadata", {}).get("labels", {})
        pods[f"{name} head"] = {**head, "ray.io/node-type": "head", "ray.io/cluster": "c"}
        for group in spec["workerGroupSpecs"]:
            labels = group["template"].get("metadata", {}).get("labels", {})
            pods[f"{name} {group['groupName']}"] = {**labels, "ray.io/node-type": "worker",
                                                     "ray.io/cluster": "c"}
    return pods


# ---------------------------------------------------------------- the scans


def wildcard_problems(invocations: list[Invocation], policies: list[dict]) -> list[str]:
    problems = []
    for inv in invocations:
        if "--app-name basic-auth" not in inv.command and "--app-name=basic-auth" not in inv.command:
            problems.append(f"{inv.where}: mlflow server without --app-name basic-auth: {inv.command}")
        if WILDCARD_HOST.search(inv.command) and not (inv.pod_labels and guarded(inv.pod_labels, policies)):
            problems.append(f"{inv.where}: mlflow server on a wildcard address: {inv.command}")
    return problems


def secret_problems(where: str, text: str) -> list[str]:
    return [f"{where}: {name}: {line.strip()}" for line in logical_lines(text)
            for name, pattern in SECRET_ON_COMMAND_LINE.items() if pattern.search(line)]


def placeholder_problems(where: str, text: str) -> list[str]:
    return [f"{where}: placeholder password: {line.strip()}" for line in text.splitlines()
            if PLACEHOLDER_PASSWORD.search(line)]


def test_every_mlflow_server_authenticates_and_binds_privately():
    invocations = all_invocations()
    where = {inv.where.split(":")[0] for inv in invocations}
    assert {"cluster/scripts/head_services.sh", "cluster/README.md", "cluster/kuberay/services.yaml"} <= where
    assert wildcard_problems(invocations, network_policies()) == []


def test_the_mlflow_scan_has_teeth():
    policies = network_policies()
    bad = [
        *text_invocations(CLUSTER / "x.sh", "mlflow server --backend-store-uri x \\\n  --host 0.0.0.0"),
        *text_invocations(CLUSTER / ("x" + ".md"), "mlflow server --app-name basic-auth --host=0.0.0.0"),
        Invocation("unguarded pod", "mlflow server --app-name basic-auth --host 0.0.0.0", {"app": "x"}),
    ]
    problems = wildcard_problems(bad, policies)
    assert len(problems) == 4, problems  # no auth + wildcard, wildcard, wildcard in an unguarded pod
    fine = text_invocations(CLUSTER / "x.sh", "mlflow server --app-name basic-auth --host $ip")
    assert wildcard_problems(fine, policies) == []


def test_no_password_on_a_command_line():
    problems = [p for path in cluster_files()
                for p in secret_problems(str(path.relative_to(ROOT)), path.read_text())]
    assert problems == []


def test_the_command_line_scan_has_teeth():
    bad = [
        """sudo -u postgres psql -v ON_ERROR_STOP=1 -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$pw'" """,
        """sudo -u postgres psql -c "ALTER ROLE disent PASSWORD '...'" """,
        "mysql --password hunter2 -e 'select 1'",
        "PGPASSWORD=hunter2 psql -h db -U disent optuna",
        "MLFLOW_TRACKING_PASSWORD=hunter2 disent-study status runs/x",
        "kubectl create secret generic disent-postgres --from-literal=password=hunter2",
    ]
    for line in bad:
        assert secret_problems("x", line), line
    for line in ["sudo -u postgres createuser --login --pwprompt disent",
                 "- name: PGPASSWORD", "valueFrom: {secretKeyRef: {name: disent-postgres, key: password}}",
                 "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='disent'\""]:
        assert not secret_problems("x", line), line


def test_no_placeholder_password_and_no_literal_secret_ships():
    problems = [p for path in cluster_files() if path.suffix != ".md"
                for p in placeholder_problems(str(path.relative_to(ROOT)), path.read_text())]
    assert problems == []
    for path in sorted(KUBERAY.glob("*.yaml")):
        for doc in manifests(path):
            if doc["kind"] == "Secret":
                assert not (doc.get("data") or doc.get("stringData")), f"{path.name}: literal Secret"
    assert placeholder_problems("x", '  password: "<change-me>"')
    assert placeholder_problems("x", "DB_PASSWORD=changeme")
    assert not placeholder_problems("x", "              valueFrom: {secretKeyRef: {name: x, key: password}}")


def test_network_policies_admit_only_ray_pods():
    policies = network_policies()
    names = {p["metadata"]["name"] for p in policies}
    assert {"disent-mlflow", "disent-postgres"} <= names
    services = service_pods()
    mlflow, postgres = services["disent-mlflow"], services["disent-postgres"]
    assert guarded(mlflow, policies) and guarded(postgres, policies)
    ray = ray_pods()
    assert {"raycluster.yaml head", "rayjob.yaml head", "raycluster.yaml gpu", "rayjob.yaml gpu"} <= set(ray)
    for name, labels in ray.items():
        assert selects({"matchLabels": PART_OF}, labels), f"{name} lacks {PART_OF}"
        assert admitted(labels, mlflow, 5000, policies), name
        assert admitted(labels, postgres, 5432, policies) == name.endswith("head"), name
    assert admitted(mlflow, postgres, 5432, policies)
    outsiders = {"another app": {"app": "web"},
                 "the RayJob submitter": {"job-name": "disent-devae-tolerance"},
                 "a pod claiming the project label only": PART_OF,
                 "Ray pods of another project": {"ray.io/node-type": "head", "ray.io/cluster": "other"}}
    for name, labels in outsiders.items():
        assert not admitted(labels, mlflow, 5000, policies), name
        assert not admitted(labels, postgres, 5432, policies), name
    assert not admitted(ray["raycluster.yaml head"], mlflow, 22, policies)  # only the service port


def test_the_policy_evaluation_has_teeth():
    open_policy = {"kind": "NetworkPolicy", "metadata": {"name": "open"},
                   "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}}
    assert admitted({"app": "web"}, {"app": "db"}, 5432, [open_policy])
    assert admitted({"app": "web"}, {"app": "db"}, 5432, [])
    other_namespaces = [{"from": [{"namespaceSelector": {}}]}]
    namespaces = {**open_policy, "spec": {**open_policy["spec"], "ingress": other_namespaces}}
    assert admitted({"app": "web"}, {"app": "db"}, 5432, [namespaces])


def test_ray_heads_authenticate_to_mlflow_from_the_secret():
    for name in RAY_POD_TEMPLATES:
        (doc,) = manifests(KUBERAY / name)
        spec = doc["spec"].get("rayClusterSpec", doc["spec"])
        (container,) = spec["headGroupSpec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        for var, key in (("MLFLOW_TRACKING_USERNAME", "username"), ("MLFLOW_TRACKING_PASSWORD", "password")):
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "disent-mlflow-auth", "key": key}, name


def test_images_and_nodes_install_the_auth_extra():
    assert '"mlflow[auth]"' in (KUBERAY / "Dockerfile").read_text()
    assert '"mlflow[auth]"' in (CLUSTER / "scripts" / "node_setup.sh").read_text()
    assert "mlflow[auth]" in (CLUSTER / "README.md").read_text()


def test_installed_mlflow_has_the_basic_auth_app():
    out = subprocess.run([sys.executable, "-m", "mlflow", "server", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"--app-name \[[^\]]*basic-auth", out.stdout), out.stdout[-3000:]


# ---------------------------------------------------------------- the scripts against stand-ins

STAND_INS = {
    "sudo": """
while [ "${1:-}" = -u ]; do shift 2; done
case "$1" in
    tee) cat > "$FAKE/unit" ;;
    DEBIAN_FRONTEND=*|apt-get) ;;
    *) exec "$@" ;;
esac
""",
    "psql": """
for arg in "$@"; do case "$arg" in -c|-tAc|--command) exit 0 ;; esac; done
cat >> "$FAKE/psql_stdin"
""",
    "createdb": "",
    "systemctl": "",
    "curl": "",
    "hostname": 'echo "10.0.0.5 172.17.0.1 "',
    "kubectl": """
while [ "${1:-}" = --namespace ]; do shift 2; done
case "$1 $2" in
    "get secret") [ -d "$FAKE/secrets/$3" ] ;;
    "create secret")
        dir="$FAKE/secrets/$4"; mkdir -p "$dir"; shift 4
        for arg in "$@"; do pair=${arg#--from-file=}; cp "${pair#*=}" "$dir/${pair%%=*}"; done ;;
    *) exit 3 ;;
esac
""",
}


@pytest.fixture
def stand_ins(tmp_path):
    """A PATH whose sudo/psql/createdb/systemctl/curl/hostname/kubectl log their arguments to
    ``argv.log`` (one NUL-separated argv per call) and act as described in STAND_INS."""
    fake = tmp_path / "fake"
    bin_dir = fake / "bin"
    bin_dir.mkdir(parents=True)
    for name, body in STAND_INS.items():
        script = bin_dir / name
        script.write_text(f'#!/bin/bash\nprintf "%s\\0" "{name}" "$@" >> "$FAKE/argv.log"\n'
                          f'printf "\\n" >> "$FAKE/argv.log"\n{body}')
        script.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "FAKE": str(fake), "TMPDIR": str(temp),
           "DISENT_ARTIFACTS": "s3://bucket/disent/mlflow-artifacts",
           "DISENT_CHECKPOINTS": "s3://bucket/disent/studies", "DISENT_VENV": "/opt/disent-venv"}
    return env, fake, home, temp


def run_script(script: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return out


def command_lines(fake: Path) -> str:
    return (fake / "argv.log").read_text().replace("\0", " ")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_head_services_keeps_every_secret_off_command_lines(stand_ins):
    env, fake, home, _ = stand_ins
    script = CLUSTER / "scripts" / "head_services.sh"
    run_script(script, env, "install")
    state = home / ".disent"
    secrets = {name: (state / name).read_text()
               for name in ("pg_password", "mlflow_password", "mlflow_secret_key")}
    for name, value in secrets.items():
        assert re.fullmatch(r"[0-9a-f]{48}", value), name
    assert len(set(secrets.values())) == 3

    argv = command_lines(fake)
    assert "psql" in argv and "createdb" in argv and "systemctl" in argv
    for name, value in secrets.items():
        assert value not in argv, f"{name} on a command line"
    assert f"PASSWORD '{secrets['pg_password']}'" in (fake / "psql_stdin").read_text()  # went via stdin
    assert "mlflow_auth" in argv

    unit = (fake / "unit").read_text()
    assert "--app-name basic-auth" in unit and "--host 10.0.0.5 " in unit and "0.0.0.0" not in unit
    assert f"EnvironmentFile={state}/mlflow_server.env" in unit
    assert not any(value in unit for value in secrets.values())  # unit files are world-readable
    server_env = dict(line.split("=", 1) for line in (state / "mlflow_server.env").read_text().splitlines())
    assert server_env == {"MLFLOW_AUTH_CONFIG_PATH": f"{state}/mlflow_auth.ini",
                          "MLFLOW_AUTH_ADMIN_PASSWORD": secrets["mlflow_password"],
                          "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets["mlflow_secret_key"]}
    auth = configparser.ConfigParser()
    auth.read(state / "mlflow_auth.ini")
    assert auth["mlflow"]["database_uri"] == "postgresql://disent@localhost:5432/mlflow_auth"
    assert auth["mlflow"]["admin_username"] == "admin" and "default_permission" in auth["mlflow"]
    credentials = configparser.ConfigParser()
    credentials.read(home / ".mlflow" / "credentials")
    assert dict(credentials["mlflow"]) == {"mlflow_tracking_username": "admin",
                                           "mlflow_tracking_password": secrets["mlflow_password"]}
    assert "DISENT_MLFLOW_URI=http://10.0.0.5:5000" in (state / "cluster.env").read_text()

    for path in [*(state / n for n in secrets), state / "mlflow_server.env", state / "mlflow_auth.ini",
                 home / ".mlflow" / "credentials", home / ".pgpass"]:
        assert mode(path) == 0o600, path
    assert mode(state) == mode(home / ".mlflow") == 0o700

    run_script(script, env, "install")  # idempotent: the passwords the databases hold stay
    assert {name: (state / name).read_text() for name in secrets} == secrets


def test_mlflow_reads_the_generated_credentials(stand_ins):
    """MLflow's own client-side reader finds the user and password in ~/.mlflow/credentials."""
    env, _, home, _ = stand_ins
    run_script(CLUSTER / "scripts" / "head_services.sh", env, "install")
    code = ("from mlflow.utils.credentials import read_mlflow_creds; c = read_mlflow_creds(); "
            "print(c.username, c.password)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**clean, "HOME": str(home)})
    assert out.stdout.split() == ["admin", (home / ".disent" / "mlflow_password").read_text()], out.stderr


def test_kuberay_secrets_script_makes_random_secrets_off_command_lines(stand_ins):
    env, fake, _, temp = stand_ins
    script = KUBERAY / "secrets.sh"
    first = run_script(script, env, "studies")
    assert first.stdout.count("created") == 2
    store = fake / "secrets"
    values = {f"{s.name}/{k.name}": k.read_text() for s in store.iterdir() for k in s.iterdir()}
    assert set(values) == {"disent-postgres/password", "disent-mlflow-auth/username",
                           "disent-mlflow-auth/password", "disent-mlflow-auth/flask-secret-key"}
    assert values.pop("disent-mlflow-auth/username") == "admin"
    for name, value in values.items():
        assert re.fullmatch(r"[0-9a-f]{48}", value), name
    assert len(set(values.values())) == 3
    argv = command_lines(fake)
    assert "--namespace studies" in argv
    assert not any(value in argv for value in values.values())
    assert not any(value in first.stdout + first.stderr for value in values.values())
    assert list(temp.iterdir()) == []  # its files with the values are gone

    again = run_script(script, env, "studies")
    assert again.stdout.count("kept") == 2
    assert {f"{s.name}/{k.name}": k.read_text() for s in store.iterdir() for k in s.iterdir()
            if k.name != "username"} == values


def test_the_stand_ins_catch_a_password_passed_with_psql_c(stand_ins, tmp_path):
    """The same run on a head_services.sh that sets the password with `psql -c` fails the check."""
    env, fake, home, _ = stand_ins
    text = (CLUSTER / "scripts" / "head_services.sh").read_text()
    bad = text.replace("""    sudo -u postgres psql -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
$verb ROLE $PG_USER LOGIN PASSWORD '$pw';
SQL
""", """    sudo -u postgres psql -v ON_ERROR_STOP=1 -c "$verb ROLE $PG_USER LOGIN PASSWORD '$pw'"
""")
    assert bad != text
    script = tmp_path / "head_services_psql_c.sh"
    script.write_text(bad)
    run_script(script, env, "install")
    assert (home / ".disent" / "pg_password").read_text() in command_lines(fake)
    assert secret_problems("bad", bad)


# ---------------------------------------------------------------- MLflow's basic-auth app, for real


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_status(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.slow
def test_basic_auth_server_with_the_generated_configuration(stand_ins, tmp_path):
    """``mlflow server --app-name basic-auth`` with the files head_services.sh writes (sqlite in
    place of PostgreSQL): anonymous requests get 401, the generated user gets in."""
    env, _, home, _ = stand_ins
    run_script(CLUSTER / "scripts" / "head_services.sh", env, "install")
    state = home / ".disent"
    ini = (state / "mlflow_auth.ini").read_text().replace(
        "postgresql://disent@localhost:5432/mlflow_auth", f"sqlite:///{tmp_path / 'auth.db'}")
    (state / "mlflow_auth.ini").write_text(ini)
    server_env = dict(line.split("=", 1) for line in (state / "mlflow_server.env").read_text().splitlines())
    port = free_port()
    log = tmp_path / "mlflow.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **server_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not (listening(port) and http_status(f"{base}/health") == 200):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
        assert http_status(search) == 401
        assert http_status(search, ("admin", "wrong-password-0123456789")) == 401
        assert http_status(search, ("admin", server_env["MLFLOW_AUTH_ADMIN_PASSWORD"])) == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
