#!/usr/bin/env bash
# Services on the head node of a `ray up` cluster (idempotent):
#   - PostgreSQL (apt) with role `disent` and databases `optuna` (Optuna storage), `mlflow` (MLflow
#     backend store) and `mlflow_auth` (MLflow's users). It listens on localhost only: the study
#     driver (OptunaSearch and the MLflow callback) runs on the head. The generated password lives
#     in ~/.pgpass, so the URLs below carry no secret (libpq reads ~/.pgpass); it reaches
#     PostgreSQL on psql's stdin, never on a command line.
#   - an MLflow tracking server as the systemd unit `disent-mlflow` on the head's private address
#     ($(hostname -I), first entry) at $DISENT_MLFLOW_PORT, with MLflow's basic-auth app
#     (`--app-name basic-auth`, needs the `mlflow[auth]` extra that node_setup.sh installs): every
#     request except /health needs the user `admin` and the generated password. PostgreSQL
#     backend, artifacts proxied to $DISENT_ARTIFACTS, one worker, no job runner.
#   - the generated MLflow credentials, readable only by this user: ~/.mlflow/credentials (MLflow
#     clients of this user, i.e. the study driver and `disent-study status|report`, read it by
#     themselves), ~/.disent/mlflow_server.env (the server's admin password and Flask secret key,
#     read by systemd) and ~/.disent/mlflow_auth.ini (MLflow's auth configuration).
#   - ~/.disent/cluster.env with DISENT_OPTUNA_STORAGE, DISENT_MLFLOW_URI and DISENT_CHECKPOINTS,
#     which cluster/submit_study.py turns into `--set storage.optuna=... --set tracking.mlflow_uri=...
#     --set storage.checkpoints=...` for `disent-study run`.
#
# Usage: head_services.sh install|restart|env
# Environment:
#   DISENT_ARTIFACTS    (install) MLflow artifact destination: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or
#                       a directory on storage shared by all nodes
#   DISENT_CHECKPOINTS  (install) Ray Tune storage_path for every study: s3://..., gs://... or a
#                       shared directory (mandatory on a multi-node cluster)
#   DISENT_VENV         venv with mlflow[auth] + psycopg2 (default ~/disent-venv)
#   DISENT_MLFLOW_PORT  (default 5000)
set -euo pipefail

ACTION=${1:-install}
VENV=${DISENT_VENV:-$HOME/disent-venv}
PORT=${DISENT_MLFLOW_PORT:-5000}
STATE="$HOME/.disent"
UNIT=/etc/systemd/system/disent-mlflow.service
PG_USER=disent
MLFLOW_ADMIN=admin

reject_placeholder() {  # $1 value, $2 name
    case "$1" in
        ""|*"<"*|*">"*)
            echo "head_services: $2='$1' is empty or still a placeholder: edit the cluster YAML" >&2
            exit 2
            ;;
    esac
}

head_ip() {  # the private address: cloud VMs carry no public address on an interface
    local ip
    ip=$(hostname -I 2>/dev/null | awk '{print $1}')
    if [ -z "$ip" ]; then
        echo "head_services: 'hostname -I' shows no address to bind MLflow to" >&2
        exit 2
    fi
    echo "$ip"
}

new_secret() {  # $1 file: 48 random hex characters, created once, readable by this user only
    if [ ! -s "$1" ]; then
        (umask 077; od -An -vtx1 -N24 /dev/urandom | tr -d ' \n' > "$1")
    fi
}

wait_for_mlflow() {  # $1 address
    for _ in $(seq 1 120); do
        if curl -fsS "http://$1:$PORT/health" >/dev/null 2>&1; then
            echo "MLflow tracking server: http://$1:$PORT (basic auth, user $MLFLOW_ADMIN)"
            return 0
        fi
        sleep 1
    done
    echo "head_services: MLflow did not answer /health within 120 s; see: sudo journalctl -u disent-mlflow" >&2
    return 1
}

install() {
    reject_placeholder "${DISENT_ARTIFACTS:-}" DISENT_ARTIFACTS
    reject_placeholder "${DISENT_CHECKPOINTS:-}" DISENT_CHECKPOINTS
    local ip
    ip=$(head_ip)
    mkdir -p "$STATE" "$HOME/.mlflow"
    chmod 700 "$STATE" "$HOME/.mlflow"

    if ! command -v psql >/dev/null 2>&1; then
        sudo apt-get update -y
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
    fi
    sudo systemctl enable --now postgresql

    new_secret "$STATE/pg_password"
    new_secret "$STATE/mlflow_password"
    new_secret "$STATE/mlflow_secret_key"
    local pw mlflow_pw
    pw=$(cat "$STATE/pg_password")
    mlflow_pw=$(cat "$STATE/mlflow_password")
    local verb=ALTER
    if ! sudo -u postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'" | grep -q 1; then
        verb=CREATE
    fi
    # the password goes through psql's stdin: a command line shows in `ps` to every user
    sudo -u postgres psql -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
$verb ROLE $PG_USER LOGIN PASSWORD '$pw';
SQL
    for db in optuna mlflow mlflow_auth; do
        if ! sudo -u postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
            sudo -u postgres createdb -O "$PG_USER" "$db"
        fi
    done
    (umask 077; echo "localhost:5432:*:$PG_USER:$pw" > "$HOME/.pgpass")

    (umask 077; cat > "$STATE/mlflow_auth.ini" <<INI
[mlflow]
default_permission = READ
database_uri = postgresql://$PG_USER@localhost:5432/mlflow_auth
admin_username = $MLFLOW_ADMIN
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
)
    (umask 077; cat > "$STATE/mlflow_server.env" <<ENV
MLFLOW_AUTH_CONFIG_PATH=$STATE/mlflow_auth.ini
MLFLOW_AUTH_ADMIN_PASSWORD=$mlflow_pw
MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$STATE/mlflow_secret_key")
ENV
)
    (umask 077; cat > "$HOME/.mlflow/credentials" <<CREDENTIALS
[mlflow]
mlflow_tracking_username = $MLFLOW_ADMIN
mlflow_tracking_password = $mlflow_pw
CREDENTIALS
)

    cat > "$STATE/cluster.env" <<ENV
DISENT_OPTUNA_STORAGE=postgresql+psycopg2://$PG_USER@localhost:5432/optuna
DISENT_MLFLOW_URI=http://$ip:$PORT
DISENT_CHECKPOINTS=$DISENT_CHECKPOINTS
ENV

    # Host headers MLflow accepts: localhost (SSH port forwarding) and private addresses (cluster nodes).
    local hosts="localhost,localhost:*,127.0.0.1,127.0.0.1:*,10.*,172.*,192.168.*"
    sudo tee "$UNIT" >/dev/null <<SERVICE
[Unit]
Description=MLflow tracking server for disent-studies
After=network-online.target postgresql.service
Wants=postgresql.service

[Service]
User=$(id -un)
Environment=HOME=$HOME
Environment=PGPASSFILE=$HOME/.pgpass
Environment=MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
EnvironmentFile=$STATE/mlflow_server.env
ExecStart=$VENV/bin/mlflow server --app-name basic-auth --backend-store-uri postgresql://$PG_USER@localhost:5432/mlflow --artifacts-destination $DISENT_ARTIFACTS --host $ip --port $PORT --allowed-hosts $hosts --workers 1
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
SERVICE
    sudo systemctl daemon-reload
    sudo systemctl enable disent-mlflow
    sudo systemctl restart disent-mlflow
    wait_for_mlflow "$ip"
    cat "$STATE/cluster.env"
}

case "$ACTION" in
    install) install ;;
    restart)
        if [ -f "$UNIT" ]; then
            ip=$(head_ip)
            sudo systemctl restart disent-mlflow
            wait_for_mlflow "$ip"
        else
            echo "head_services: no $UNIT (external tracking server?): nothing to restart"
        fi
        ;;
    env) cat "$STATE/cluster.env" ;;
    *) echo "usage: head_services.sh install|restart|env" >&2; exit 2 ;;
esac
