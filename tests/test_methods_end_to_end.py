"""Every registered method trains through train(), is scored by the metric engine, and resumes."""

import pytest

from disent_core.methods.registry import METHODS
from disent_core.metrics import evaluate
from disent_core.train import train


def _config(name: str) -> dict:
    method = {"name": name}
    if name == "deft":
        method.update(stage_steps=4, group_size=2)
    if name == "cascade_vae_c":
        method.update(stage_steps=4)
    return {
        "dataset": {"name": "dsprites_procedural", "options": {"sizes": [3, 2, 4, 4, 4]}},
        "method": method,
        "model": {"latent_dim": 4},
        "train": {"steps": 10, "batch_size": 8, "seed": 1, "prefetch": 0, "report_every": 5},
    }


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_trains_and_is_scored(name):
    result = train(_config(name))
    assert result.step == 10
    scores = evaluate(result.method, result.dataset, "fast", metrics=["mig", "sap", "reconstruction"])
    assert 0.0 <= scores["mig.discrete_mig"] <= 1.0
    assert 0.0 <= scores["sap.SAP_score"] <= 1.0
    if name == "did":  # a GAN has no reconstruction of real images: the engine says so
        assert "reconstruction.reconstruction_error" not in scores
        assert "skipped" in scores.notes["reconstruction"]
    else:
        assert scores["reconstruction.reconstruction_error"] > 0
