#!/usr/bin/env bash
# Prepare one node of a `ray up` cluster (run by the cluster launcher, once per node, idempotent):
#   - a Python venv (uv-managed CPython, the same minor version on every node) at $DISENT_VENV,
#     activated from ~/.bashrc so that `ray start`, `ray submit` and `ray exec` use it;
#   - torch: the CPU wheel on the head (it runs no trials), the PyPI CUDA wheel on GPU workers;
#   - this project from the checkout synced by file_mounts (`pip install -e`), psycopg2-binary and
#     MLflow's `auth` extra (Flask-WTF), which the head's `mlflow server --app-name basic-auth` needs;
#   - RAY_AUTH_MODE=token in ~/.bashrc (the token itself is file-mounted to ~/.ray/auth_token).
#
# Usage: node_setup.sh head|worker
# Environment (all optional):
#   DISENT_PROJECT_DIR  synced checkout            (default ~/disent-studies)
#   DISENT_VENV         venv path                  (default ~/disent-venv)
#   DISENT_PYTHON       Python version for the venv (default 3.11)
#   DISENT_TORCH        torch requirement           (default torch==2.13.0)
#   DISENT_TORCH_INDEX  extra index for the worker torch wheel, e.g.
#                       https://download.pytorch.org/whl/cu128 when the NVIDIA driver is too old
#                       for the CUDA build on PyPI (check `nvidia-smi`)
#   DISENT_EXTRA_PIP    extra packages, space separated (e.g. "boto3" on an AWS head)
set -euo pipefail

ROLE=${1:?usage: node_setup.sh head|worker}
PROJECT_DIR=${DISENT_PROJECT_DIR:-$HOME/disent-studies}
VENV=${DISENT_VENV:-$HOME/disent-venv}
PYTHON_VERSION=${DISENT_PYTHON:-3.11}
TORCH=${DISENT_TORCH:-torch==2.13.0}

if [ ! -f "$PROJECT_DIR/pyproject.toml" ]; then
    echo "node_setup: no checkout at $PROJECT_DIR (file_mounts should sync the repository there)" >&2
    exit 2
fi

# uv: a pinned CPython without touching the system Python.
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
    curl -LsSf https://astral.sh/uv/install.sh | sh
fi
if [ ! -x "$VENV/bin/python" ]; then
    uv venv --seed --python "$PYTHON_VERSION" "$VENV"
fi
PIP=(uv pip install --python "$VENV/bin/python")

case "$ROLE" in
    head)
        "${PIP[@]}" "$TORCH" --index-url https://download.pytorch.org/whl/cpu
        ;;
    worker)
        if [ -n "${DISENT_TORCH_INDEX:-}" ]; then
            "${PIP[@]}" "$TORCH" --index-url "$DISENT_TORCH_INDEX"
        else
            "${PIP[@]}" "$TORCH"
        fi
        ;;
    *)
        echo "node_setup: role must be head or worker, got $ROLE" >&2
        exit 2
        ;;
esac

# The project (pins ray[tune,default] 2.60, optuna 5.0, mlflow 3.17) + the PostgreSQL driver + the
# basic-auth app's extra (the project's pin keeps mlflow itself at 3.17).
# shellcheck disable=SC2086
"${PIP[@]}" -e "$PROJECT_DIR" psycopg2-binary "mlflow[auth]" ${DISENT_EXTRA_PIP:-}

# Login shells of the launcher (ray start / ray exec / ray submit) pick these up.
add_line() { grep -qxF "$1" ~/.bashrc 2>/dev/null || echo "$1" >> ~/.bashrc; }
add_line "source $VENV/bin/activate"
add_line "export RAY_AUTH_MODE=token"
add_line "export HDF5_USE_FILE_LOCKING=FALSE"

if [ ! -s "$HOME/.ray/auth_token" ]; then
    echo "node_setup: warning: ~/.ray/auth_token is missing; run 'ray get-auth-token --generate' on" \
         "the machine that runs 'ray up' (file_mounts ships it)" >&2
fi
"$VENV/bin/python" -c "import ray, torch, optuna, mlflow, studies; print('node ready:', ray.__version__, torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu')"
