"""disentanglement_lib's sanity bounds on identity observations (anchors.md B.3 item 7)."""

import numpy as np
import pytest
from metric_fixtures import identity, identity_dataset, small

from disent_core.metrics import evaluate, get_protocol

# dlib's own tests use batches of 5 for the BetaVAE and FactorVAE scores
PROTOCOL = small(batch_size=5)
CONTINUOUS_SAP = PROTOCOL.override({"sap.continuous_factors": True})
CHEAP = ["beta_vae", "factor_vae", "mig", "sap", "modularity", "irs"]


def constant(x: np.ndarray) -> np.ndarray:
    return np.zeros((len(x), 10))


def duplicated(x: np.ndarray) -> np.ndarray:
    codes = identity(x)
    return np.hstack([codes, codes])


def test_identity_representation_scores_high(identity_data):
    scores = evaluate(identity, identity_data, PROTOCOL, metrics=CHEAP)
    for key in [
        "beta_vae.eval_accuracy",
        "factor_vae.eval_accuracy",
        "mig.discrete_mig",
        "modularity.modularity_score",
        "irs.IRS",
    ]:
        assert 0.9 <= scores[key] <= 1.0, key
    assert scores["factor_vae.num_active_dims"] == 10
    continuous = evaluate(identity, identity_data, CONTINUOUS_SAP, metrics=["sap"])
    assert 0.9 <= continuous["sap.SAP_score"] <= 1.0
    # discrete SAP: one scalar separates a 10-valued factor only partly, other codes are at chance
    assert scores["sap.SAP_score"] > 0.1


def test_constant_representation_scores_low(identity_data):
    scores = evaluate(constant, identity_data, PROTOCOL, metrics=CHEAP)
    for key in ["mig.discrete_mig", "sap.SAP_score", "factor_vae.eval_accuracy", "factor_vae.train_accuracy"]:
        assert 0.0 <= scores[key] <= 0.2, key
    assert 0.0 <= scores["irs.IRS"] <= 0.1
    assert scores["modularity.modularity_score"] == 0.0
    assert scores["modularity.explicitness_score_test"] == pytest.approx(0.5)
    assert scores["factor_vae.num_active_dims"] == 0
    continuous = evaluate(constant, identity_data, CONTINUOUS_SAP, metrics=["sap"])
    assert continuous["sap.SAP_score"] <= 0.2


def test_duplicated_latents(identity_data):
    scores = evaluate(duplicated, identity_data, PROTOCOL, metrics=["mig", "modularity"])
    assert 0.0 <= scores["mig.discrete_mig"] <= 0.1
    assert scores["modularity.modularity_score"] >= 0.9
    continuous = evaluate(duplicated, identity_data, CONTINUOUS_SAP, metrics=["sap"])
    assert continuous["sap.SAP_score"] <= 0.2


def test_shuffled_codes_are_not_modular(identity_data):
    rng = np.random.default_rng(0)

    def shuffled(x: np.ndarray) -> np.ndarray:
        # each observation's code is a permutation of its factors (dlib's "bad" representation)
        codes = identity(x)
        return np.take_along_axis(codes, np.argsort(rng.random(codes.shape), axis=1), axis=1)

    protocol = PROTOCOL.with_sizes(num_train=20_000)
    scores = evaluate(shuffled, identity_data, protocol, metrics=["modularity"], n_jobs=1)
    assert scores["modularity.modularity_score"] <= 0.2


def test_dci_bounds():
    data = identity_dataset(num_factors=5, num_values=5)
    protocol = get_protocol("dlib2019").with_sizes(num_train=500, num_test=500)

    def dup(x: np.ndarray) -> np.ndarray:
        return np.hstack([identity(x), identity(x)])

    good = evaluate(identity, data, protocol, metrics=["dci"])
    assert good["dci.disentanglement"] >= 0.9 and good["dci.completeness"] >= 0.9
    assert good["dci.informativeness_test"] >= 0.99
    redundant = evaluate(dup, data, protocol, metrics=["dci"])
    assert redundant["dci.disentanglement"] >= 0.9
    assert redundant["dci.completeness"] == pytest.approx(1 - np.log(2) / np.log(10), abs=0.1)
    flat = evaluate(lambda x: np.zeros((len(x), 5)), data, protocol, metrics=["dci"])
    assert flat["dci.disentanglement"] == pytest.approx(0.0, abs=1e-7)
    assert flat["dci.completeness"] == pytest.approx(0.0, abs=1e-7)


def test_discrete_sap_on_binary_factors():
    data = identity_dataset(sizes=(2,) * 6)
    protocol = get_protocol("dlib2019").with_sizes(num_train=1000, num_test=1000)
    scores = evaluate(identity, data, protocol, metrics=["sap"])
    # the own code is perfect, every other code is at chance (0.5, balanced classes)
    assert scores["sap.SAP_score"] == pytest.approx(0.5, abs=0.06)


def test_fast_protocol_with_histogram_boosting():
    data = identity_dataset(num_factors=5, num_values=5)
    protocol = get_protocol("fast").with_sizes(num_train=500, num_test=500, num_eval=200, batch_size=16)
    scores = evaluate(identity, data, protocol)
    assert scores.protocol.startswith("fast+") and not scores.comparable
    assert scores["dci.disentanglement"] >= 0.9 and scores["dci.completeness"] >= 0.9
    assert scores["mig.discrete_mig"] >= 0.9 and scores["factor_vae.eval_accuracy"] >= 0.9
    flat = evaluate(lambda x: np.zeros((len(x), 5)), data, protocol, metrics=["dci"])
    assert flat["dci.disentanglement"] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.slow
def test_identity_at_full_dlib2019_sizes(identity_data):
    metrics = ["beta_vae", "factor_vae", "mig", "unsupervised", "irs"]
    scores = evaluate(identity, identity_data, "dlib2019", metrics=metrics)
    assert scores["beta_vae.eval_accuracy"] == 1.0
    assert scores["factor_vae.eval_accuracy"] == 1.0
    assert 0.97 <= scores["mig.discrete_mig"] <= 1.0
    assert scores["irs.IRS"] >= 0.99
    assert abs(scores["unsupervised.gaussian_total_correlation"]) < 0.01
