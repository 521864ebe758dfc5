"""What a study driver prints besides its own progress: the libraries' preambles, quiet by default.

Without ``--verbose``, ``run`` and ``resume`` print their own lines only (``progress.py``). Each
library's own output is turned down through its public switches:

- MLflow: its loggers at WARNING (no "Creating initial MLflow database tables" INFO lines), and
  ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` (no "View run" line, and the request behind it, for
  every run that ends on a tracking server).
- Optuna: ``optuna.logging.set_verbosity(WARNING)`` (no ``[I ...]`` line per study or trial).
- Ray Tune: ``RAY_AIR_NEW_OUTPUT=0`` selects the reporter that ``verbose=0`` silences (the newer
  one prints a configuration box, the results path and a TensorBoard hint whatever the verbosity);
  ``TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S=0`` drops the warning about
  snapshots forced by checkpoints (``trainable.checkpoint_config`` explains them); the
  ``ray.tune.tune`` logger at ERROR drops the interrupt hint that names ``Tuner.restore`` (the CLI
  names ``disent-study resume``).
- Ray's warning that an embedded Ray enabled token authentication: ``run`` and ``resume`` set the
  mode and a token of the driver's own explicitly before Ray is imported
  (``studies.cli.study.embedded_ray_token``), so Ray has nothing to warn about.

Environment variables already set by the user are left as they are.
"""

from __future__ import annotations

import logging
import os

import optuna

QUIET_ENV = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
QUIET_LOGGERS = {"mlflow": logging.WARNING, "ray.tune.tune": logging.ERROR}


def quiet_libraries() -> None:
    """Turn the libraries' own output down (see the module docstring); idempotent."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
