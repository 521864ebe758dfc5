"""``tracking.log_model``: each completed trial's MLflow run gets a logged PyTorch model.

The end-to-end test runs a tiny study through ``disent-study run`` (one trial that completes, one
that diverges) and loads the model back with ``mlflow.pytorch.load_model``. The others drive the
tracker directly, on a local store and through a tracking server, with final checkpoint directories
written the way the trainable writes them, with the model (the option on) and without it (off, the
default), and check the option's validation.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import mlflow.pyfunc
import mlflow.pytorch
import numpy as np
import pytest
import torch
from mlflow.entities import LoggedModelStatus
from mlflow.models import get_model_info
from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX
from study_helpers import TINY, nested_runs, run_cli, tracked_study, write_spec

from disent_core.data.registry import get_dataset
from disent_core.errors import ConfigError
from disent_core.export import RepresentationModel
from disent_core.train import CHECKPOINT_NAME, load_trained, train
from studies.orchestration.logged_model import MODEL_DIR, write_model
from studies.orchestration.tracking import StudyTracker
from studies.spec import validate_spec

DATASET = {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}}


@pytest.fixture(scope="module")
def final_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two copies of a tiny model's final checkpoint directory: without ``model/``, and with it."""
    plain = tmp_path_factory.mktemp("final")
    train({"dataset": DATASET, "method": {"name": "beta_vae", "beta": 4},
           "model": {"latent_dim": 4, "base_channels": 8},
           "train": {"steps": 5, "batch_size": 8, "prefetch": 0}}, checkpoint_dir=plain)
    (plain / "scores.json").write_text("{}")
    with_model = tmp_path_factory.mktemp("final_with_model")
    shutil.copytree(plain, with_model, dirs_exist_ok=True)
    model = write_model(with_model, with_model / CHECKPOINT_NAME,
                        get_dataset(DATASET["name"], **DATASET["options"]), seed=0)
    assert model == with_model / MODEL_DIR
    return plain, with_model


def batch(n: int = 6) -> torch.Tensor:
    dataset = get_dataset(DATASET["name"], **DATASET["options"])
    images = dataset.sample_observations(n, np.random.default_rng(1))
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))


def logged_models(client, experiment: str, run_id: str) -> list:
    return list(client.search_logged_models([experiment], filter_string=f"source_run_id = '{run_id}'"))


def test_the_option_is_off_by_default_and_validated():
    spec = {"name": "s", **TINY, "methods": {"beta_vae": {"beta": 4}}}
    assert validate_spec(spec).tracking.log_model is False
    assert validate_spec({**spec, "tracking": {"log_model": True}}).tracking.log_model is True
    with pytest.raises(ConfigError, match=r"tracking\.log_model"):
        validate_spec({**spec, "tracking": {"log_model": "sometimes"}})
    with pytest.raises(ConfigError, match=r"tracking\.log_model: the model is built from the final"):
        validate_spec({**spec, "tracking": {"log_model": True}, "storage": {"keep_checkpoints": "none"}})


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_the_tracker_logs_the_model_of_a_final_checkpoint_once(store, tmp_path, final_dirs, monkeypatch,
                                                              request):
    plain, with_model = final_dirs
    spec, uri, client, experiment, parent = tracked_study(tmp_path, "models")
    if store == "server":  # the same through a tracking server: REST calls, proxied artifact uploads
        uri = request.getfixturevalue("mlflow_server").url
        client = mlflow.MlflowClient(uri)
        experiment = client.create_experiment("models")
        parent = client.create_run(experiment).info.run_id
    trials = {name: SimpleNamespace(trial_id=name, config={"method": "beta_vae", TRIAL_INDEX: 0},
                                    checkpoint=tune.Checkpoint.from_directory(str(directory)),
                                    last_result={"step": 5})
              for name, directory in (("on", with_model), ("off", plain))}
    tracker = StudyTracker(spec, uri, experiment, parent)
    for trial in trials.values():
        tracker.on_trial_start(0, [], trial)
        tracker.on_trial_complete(0, [], trial)
    StudyTracker(spec, uri, experiment, parent).on_trial_complete(0, [], trials["on"])  # a resumed driver

    on, off = (tracker.run_id(trials[name]) for name in ("on", "off"))
    models = logged_models(client, experiment, on)
    assert [(m.name, m.status) for m in models] == [("model", LoggedModelStatus.READY)]
    outputs = client.get_run(on).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(models[0].model_id, 5)]
    assert logged_models(client, experiment, off) == []
    assert client.get_run(off).outputs.model_outputs == []
    for run_id in (on, off):
        assert client.get_run(run_id).info.status == "FINISHED"
        assert sorted(a.path for a in client.list_artifacts(run_id, "final")) == [
            f"final/{CHECKPOINT_NAME}", "final/scores.json"
        ]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pytorch.load_model(f"runs:/{on}/model")
    method, _ = load_trained(with_model / CHECKPOINT_NAME, device="cpu")
    x = batch()
    assert isinstance(model, RepresentationModel) and type(model.method) is type(method)
    with torch.no_grad():
        assert torch.equal(model(x), method.representation(x))


@pytest.mark.slow
def test_a_study_logs_a_loadable_model_per_completed_trial(tmp_path, monkeypatch):
    spec = write_spec(
        tmp_path, "models",
        train={**TINY["train"], "optimizer": {"lr": {"search": "grid", "values": [0.001, 1000.0]}}},
        methods={"beta_vae": {"beta": 4}}, seeds=[0], search={"algorithm": "grid", "max_concurrent": 2},
        tracking={"log_model": True},
    )
    root = tmp_path / "runs"
    done = run_cli("run", str(spec), "--root", str(root), "--no-report")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = {r.info.status: r for r in nested_runs(root, "models")}
    assert sorted(runs) == ["FAILED", "FINISHED"]  # lr 1000 diverges

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = runs["FINISHED"].info.experiment_id
    assert logged_models(client, experiment, runs["FAILED"].info.run_id) == []
    run_id = runs["FINISHED"].info.run_id
    [logged] = logged_models(client, experiment, run_id)
    assert logged.status == LoggedModelStatus.READY
    assert "final/model" not in {a.path for a in client.list_artifacts(run_id, "final")}

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    uri_of_model = f"runs:/{run_id}/model"
    signature = get_model_info(uri_of_model).signature
    [images_in], [codes_out] = signature.inputs.inputs, signature.outputs.inputs
    assert (tuple(images_in.shape), str(images_in.type)) == ((-1, 1, 64, 64), "float32")
    assert (tuple(codes_out.shape), str(codes_out.type)) == ((-1, 4), "float32")
    model = mlflow.pytorch.load_model(uri_of_model)
    checkpoint = client.download_artifacts(run_id, f"final/{CHECKPOINT_NAME}", str(tmp_path))
    method, _ = load_trained(checkpoint, device="cpu")
    x = batch()
    with torch.no_grad():
        codes = method.representation(x)
        assert torch.equal(model(x), codes)
    served = mlflow.pyfunc.load_model(f"models:/{logged.model_id}").predict(x.numpy())
    assert np.allclose(served, codes.numpy(), atol=1e-6)
