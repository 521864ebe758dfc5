#!/usr/bin/env bash
# Services on the head node of a `ray up` cluster (idempotent):
#   - PostgreSQL (apt) with role `disent` and databases `optuna` (Optuna storage) and `mlflow`
#     (MLflow backend store). It listens on localhost only: the study driver (OptunaSearch and the
#     MLflow callback) runs on the head. The generated password lives in ~/.pgpass, so the URLs
#     below carry no secret (libpq reads ~/.pgpass).
#   - an MLflow tracking server as the systemd unit `disent-mlflow` on 0.0.0.0:$DISENT_MLFLOW_PORT
#     (PostgreSQL backend, artifacts proxied to $DISENT_ARTIFACTS, one worker, no job runner),
#     reachable from every node of the cluster.
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
#   DISENT_VENV         venv with mlflow + psycopg2 (default ~/disent-venv)
#   DISENT_MLFLOW_PORT  (default 5000)
set -euo pipefail

ACTION=${1:-install}
VENV=${DISENT_VENV:-$HOME/disent-venv}
PORT=${DISENT_MLFLOW_PORT:-5000}
STATE="$HOME/.disent"
UNIT=/etc/systemd/system/disent-mlflow.service
PG_USER=disent

reject_placeholder() {  # $1 value, $2 name
    case "$1" in
        ""|*"<"*|*">"*)
            echo "head_services: $2='$1' is empty or still a placeholder: edit the cluster YAML" >&2
            exit 2
            ;;
    esac
}

head_ip() {
    hostname -I 2>/dev/null | awk '{print $1}'
}

wait_for_mlflow() {
    for _ in $(seq 1 120); do
        if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
            echo "MLflow tracking server: http://$(head_ip):$PORT"
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
    mkdir -p "$STATE"
    chmod 700 "$STATE"

    if ! command -v psql >/dev/null 2>&1; then
        sudo apt-get update -y
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
    fi
    sudo systemctl enable --now postgresql

    if [ ! -s "$STATE/pg_password" ]; then
        (umask 077; "$VENV/bin/python" -c "import secrets; print(secrets.token_hex(24))" > "$STATE/pg_password")
    fi
    local pw
    pw=$(cat "$STATE/pg_password")
    if ! sudo -u postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'" | grep -q 1; then
        sudo -u postgres psql -v ON_ERROR_STOP=1 -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$pw'"
    else
        sudo -u postgres psql -v ON_ERROR_STOP=1 -c "ALTER ROLE $PG_USER PASSWORD '$pw'" >/dev/null
    fi
    for db in optuna mlflow; do
        if ! sudo -u postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
            sudo -u postgres createdb -O "$PG_USER" "$db"
        fi
    done
    (umask 077; echo "localhost:5432:*:$PG_USER:$pw" > "$HOME/.pgpass")

    cat > "$STATE/cluster.env" <<ENV
DISENT_OPTUNA_STORAGE=postgresql+psycopg2://$PG_USER@localhost:5432/optuna
DISENT_MLFLOW_URI=http://$(head_ip):$PORT
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
ExecStart=$VENV/bin/mlflow server --backend-store-uri postgresql://$PG_USER@localhost:5432/mlflow --artifacts-destination $DISENT_ARTIFACTS --host 0.0.0.0 --port $PORT --allowed-hosts $hosts --workers 1
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
SERVICE
    sudo systemctl daemon-reload
    sudo systemctl enable disent-mlflow
    sudo systemctl restart disent-mlflow
    wait_for_mlflow
    cat "$STATE/cluster.env"
}

case "$ACTION" in
    install) install ;;
    restart)
        if [ -f "$UNIT" ]; then
            sudo systemctl restart disent-mlflow
            wait_for_mlflow
        else
            echo "head_services: no $UNIT (external tracking server?): nothing to restart"
        fi
        ;;
    env) cat "$STATE/cluster.env" ;;
    *) echo "usage: head_services.sh install|restart|env" >&2; exit 2 ;;
esac
