"""Run ``disent-study`` on the head node of a Ray cluster.

``ray submit`` copies one Python file to ``~/`` on the head and runs ``python ~/FILE ARGS`` there, so
this file is that launcher::

    ray submit cluster/aws.yaml cluster/submit_study.py -- run studies/catalog/devae_tolerance.yaml

It also works as a Ray Jobs entrypoint (``ray job submit ... -- python cluster/submit_study.py run ...``).
Before calling ``studies.cli.main(ARGS)`` it

- connects to the running cluster (``RAY_ADDRESS=auto`` unless RAY_ADDRESS is already set, as it is
  under ``ray job submit``), instead of the embedded ``local`` Ray that ``disent-study run`` starts
  by default;
- changes into the project checkout (``$DISENT_PROJECT_DIR``, else ``~/disent-studies``, else the
  checkout that holds the installed ``studies`` package) unless the current directory is one, so
  relative spec paths such as ``studies/catalog/quickstart.yaml`` resolve;
- for ``run`` and ``resume``, adds ``--autoscaling`` (the cluster's GPU workers start on demand, so
  a trial's resources are not compared with what the cluster has now);
- for ``run``, adds ``--set storage.optuna=... --set tracking.mlflow_uri=...
  --set storage.checkpoints=...`` from the environment variables DISENT_OPTUNA_STORAGE,
  DISENT_MLFLOW_URI, DISENT_CHECKPOINTS, else from ``~/.disent/cluster.env`` (written by
  ``cluster/scripts/head_services.sh``), and ``--root ~/disent-runs`` (or $DISENT_RUNS_ROOT): a
  fixed place on the head for the study directories that ``disent-study status``/``resume`` read
  (under ``ray job submit`` the working directory is a temporary copy). Options given on the
  command line win.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import dotenv_values

# environment variable -> spec field filled in with --set
CLUSTER_DEFAULTS = {
    "DISENT_OPTUNA_STORAGE": "storage.optuna",
    "DISENT_MLFLOW_URI": "tracking.mlflow_uri",
    "DISENT_CHECKPOINTS": "storage.checkpoints",
}
CLUSTER_ENV_FILE = Path("~/.disent/cluster.env")
DEFAULT_RUNS_ROOT = "~/disent-runs"


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a dotenv file such as ``~/.disent/cluster.env``.

    Parsed by python-dotenv: ``#`` comments, blank lines, an ``export`` prefix and single or double
    quotes around values are understood; ``${VAR}`` is kept literally (no interpolation). A key
    without ``=`` has no value and is left out.

    Args:
        path: the file (``~`` is expanded).

    Returns:
        {name: value} as strings; empty when the file does not exist.
    """
    path = path.expanduser()
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=False)
    return {key: value for key, value in values.items() if value is not None}


def keys_already_set(argv: list[str]) -> set[str]:
    """Dotted keys given as ``--set KEY=VALUE`` or ``--set=KEY=VALUE``."""
    keys = set()
    for i, arg in enumerate(argv):
        if arg == "--set" and i + 1 < len(argv):
            keys.add(argv[i + 1].partition("=")[0])
        elif arg.startswith("--set="):
            keys.add(arg[len("--set="):].partition("=")[0])
    return keys


def with_cluster_defaults(argv: list[str], env: dict[str, str], env_file: dict[str, str]) -> list[str]:
    """``argv`` plus, for ``run`` and ``resume``, ``--autoscaling`` (the cluster configs add GPU
    workers on demand, so a trial may ask for more than the cluster has now), and for ``run``
    ``--root`` and ``--set field=value`` for each cluster default the user did not set.

    Args:
        argv: the ``disent-study`` arguments.
        env: the environment.
        env_file: the variables of ``~/.disent/cluster.env``.

    Returns:
        The arguments to run.
    """
    if not argv or argv[0] not in ("run", "resume"):
        return list(argv)
    extra = [] if "--autoscaling" in argv else ["--autoscaling"]
    if argv[0] == "resume":
        return [*argv, *extra]
    given = keys_already_set(argv)
    if not any(arg == "--root" or arg.startswith("--root=") for arg in argv):
        root = env.get("DISENT_RUNS_ROOT") or env_file.get("DISENT_RUNS_ROOT") or DEFAULT_RUNS_ROOT
        extra += ["--root", str(Path(root).expanduser())]
    for var, field in CLUSTER_DEFAULTS.items():
        value = env.get(var) or env_file.get(var)
        if value and field not in given:
            extra += ["--set", f"{field}={value}"]
    return [*argv, *extra]


def project_dir(env: dict[str, str]) -> Path | None:
    """The checkout to run in, or None to stay in the current directory."""
    if (Path.cwd() / "studies" / "cli").is_dir():
        return None
    candidates = [env.get("DISENT_PROJECT_DIR"), "~/disent-studies"]
    for candidate in candidates:
        if candidate and (Path(candidate).expanduser() / "studies" / "cli").is_dir():
            return Path(candidate).expanduser()
    try:
        import studies
    except ImportError:
        return None
    root = Path(studies.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("RAY_ADDRESS", "auto")
    root = project_dir(dict(os.environ))
    if root is not None:
        os.chdir(root)
    argv = with_cluster_defaults(argv, dict(os.environ), read_env_file(CLUSTER_ENV_FILE))
    print(f"[submit_study] {Path.cwd()}: disent-study {' '.join(argv)}", flush=True)
    from studies.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
