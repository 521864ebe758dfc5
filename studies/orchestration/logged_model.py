"""A trial's trained model as an MLflow PyTorch model (the spec's ``tracking.log_model``).

The model is ``disent_core.export.RepresentationModel``: ``model(x)`` for images x (N, C, H, W),
float in [0, 1], is the representation (N, d) the metrics score, and ``model.method`` is the whole
trained method. ``mlflow.pytorch.load_model("runs:/<run id>/model")`` (or ``models:/<model id>``)
returns it, with this project installed.

The work is split between the two ends of a trial, as the trial's other final files are:

- In the trial (``write_model``, called by the trainable at the last step): the model is built from
  the final checkpoint with ``load_trained(path, device="cpu")``, its signature inferred from a
  real batch of the trial's dataset, and ``mlflow.pytorch.save_model`` writes it into the final
  checkpoint's ``model/`` folder. The worker has the data and the model at hand, and the Tune
  driver, which may run on a node without the data, never builds a dataset or a model. The
  trainable imports this module only when it logs a model, so trials that log none import no MLflow.
- In the driver (``log_model``, called by the tracker when the trial completes): the folder becomes
  a logged model of the trial's MLflow run, through the client of the study's tracking URI (a
  local store or a server): ``create_logged_model`` with the run as its source, the files uploaded
  with ``log_model_artifacts``, ``finalize_logged_model`` READY and ``log_outputs`` linking it to
  the run at its last step. ``mlflow.pytorch.log_model`` would do the same in one call, but only
  for the active run of the global tracking URI, which the tracker does not set.

A run holds one READY model: a trial whose completion is logged again (a driver killed between the
upload and the run's end, then resumed) reuses the model of its earlier attempt instead of adding
one, and finishes one the earlier attempt left PENDING.

The model is pickled (``serialization_format="pickle"``, cloudpickle) so that it loads as the
module itself, method included; MLflow's ``pt2`` format would keep the traced forward only. Its
pip requirements are pinned here (torch, cloudpickle, this project) instead of inferred, which
would start a Python process per trial to load the model. No input example is stored (the
signature gives the input's shape and type): one image's JSON example and serving example weigh
about 200 KB, a tenth of the weights of the standard model, for each of thousands of trials.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import mlflow.pytorch
import numpy as np
import torch
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from disent_core.data.dataset import GroundTruthDataset
from disent_core.export import load_representation_model

MODEL_DIR = "model"
"""The folder of a trial's final checkpoint that holds its MLflow model; the tracker logs it as the
run's logged model, not with the other final files under ``final/``."""
MODEL_NAME = "model"
"""The logged model's name, so ``runs:/<run id>/model`` finds it."""
SIGNATURE_BATCH = 2
"""Observations of the real batch the signature is inferred from."""
REQUIREMENTS = ("torch", "cloudpickle", "disent-studies")
"""The distributions a loaded model needs: PyTorch, the pickle module, the method classes."""


def model_requirements() -> list[str]:
    """The pip requirements of a saved model: each of ``REQUIREMENTS`` installed here, pinned.

    Returns:
        ``name==version`` lines, without a local version label (``torch==2.13.0``, not ``+cpu``).
    """
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def write_model(final: Path, checkpoint: Path, dataset: GroundTruthDataset, seed: int) -> Path:
    """Save the model of a final checkpoint as an MLflow PyTorch model, with its signature.

    Args:
        final: the trial's final checkpoint directory; the model goes into its ``MODEL_DIR``,
            which must not exist.
        checkpoint: the trial's final ``checkpoint.pt``.
        dataset: the trial's dataset; a seeded batch of it is the signature's example.
        seed: seeds the example batch.

    Returns:
        The model's directory.
    """
    model = load_representation_model(checkpoint)
    images = dataset.sample_observations(SIGNATURE_BATCH, np.random.default_rng(seed))
    x = np.ascontiguousarray(images, dtype=np.float32)
    with torch.no_grad():
        codes = model(torch.from_numpy(x)).numpy()
    directory = final / MODEL_DIR
    mlflow.pytorch.save_model(model, str(directory), signature=infer_signature(x, codes),
                              serialization_format="pickle", pip_requirements=model_requirements())
    return directory


def log_model(client: MlflowClient, experiment_id: str, run_id: str, directory: Path, step: int) -> str:
    """Log the MLflow model in ``directory`` as the logged model of ``run_id`` (once per run).

    Args:
        client: the study's MLflow client.
        experiment_id: the study's experiment.
        run_id: the trial's run, the model's source.
        directory: a model written by ``write_model``.
        step: the trial's last step, where the run's outputs place the model.

    Returns:
        The logged model's id (``models:/<id>``).
    """
    earlier = client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'")
    ready = [m for m in earlier if m.status == LoggedModelStatus.READY]
    if ready:
        return ready[0].model_id
    if earlier:
        model_id = earlier[0].model_id
        outputs = client.get_run(run_id).outputs
        linked = {output.model_id for output in (outputs.model_outputs if outputs else [])}
    else:
        model_id = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id).model_id
        linked = set()
    if model_id not in linked:
        client.log_outputs(run_id, [LoggedModelOutput(model_id, step)])
    client.log_model_artifacts(model_id, str(directory))
    client.finalize_logged_model(model_id, LoggedModelStatus.READY)
    return model_id
