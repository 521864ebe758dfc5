#!/usr/bin/env bash
# Create the Secrets that cluster/kuberay/*.yaml read, with random passwords. Idempotent: an
# existing Secret is kept, so running it again never changes a password a database already holds.
#   disent-postgres     password           PostgreSQL role `disent` (Optuna, MLflow databases)
#   disent-mlflow-auth  username, password MLflow's basic-auth admin: the server creates it, the
#                                          Ray head reads it as MLFLOW_TRACKING_USERNAME/PASSWORD
#                       flask-secret-key   the MLflow server's CSRF key
# The values reach kubectl as files readable only by you, never on a command line (`ps` shows
# command lines to every user of the machine), and are not printed. Read one back with
#   kubectl get secret disent-mlflow-auth -o jsonpath='{.data.password}' | base64 -d
#
# Usage: bash cluster/kuberay/secrets.sh [NAMESPACE]   (default: kubectl's current namespace)
set -euo pipefail

NAMESPACE=${1:-}
MLFLOW_ADMIN=admin

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 700 "$WORK"

kube() {
    if [ -n "$NAMESPACE" ]; then
        kubectl --namespace "$NAMESPACE" "$@"
    else
        kubectl "$@"
    fi
}

new_secret() {  # $1 file: 48 random hex characters
    (umask 077; od -An -vtx1 -N24 /dev/urandom | tr -d ' \n' > "$1")
}

create() {  # $1 Secret name, then KEY=FILE pairs
    local name=$1
    shift
    if kube get secret "$name" >/dev/null 2>&1; then
        echo "secrets: $name exists, kept"
        return 0
    fi
    local args=() pair
    for pair in "$@"; do
        args+=("--from-file=$pair")
    done
    kube create secret generic "$name" "${args[@]}" >/dev/null
    echo "secrets: $name created"
}

new_secret "$WORK/pg_password"
new_secret "$WORK/mlflow_password"
new_secret "$WORK/flask_secret_key"
(umask 077; printf '%s' "$MLFLOW_ADMIN" > "$WORK/mlflow_username")

create disent-postgres "password=$WORK/pg_password"
create disent-mlflow-auth "username=$WORK/mlflow_username" "password=$WORK/mlflow_password" \
    "flask-secret-key=$WORK/flask_secret_key"
