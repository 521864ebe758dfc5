"""disentanglement_lib's sanity bounds on identity observations (its metric tests; docs/provenance.md,
"Metric protocols")."""

import numpy as np
import pytest
from metric_fixtures import identity, identity_dataset, small

from disent_core.metrics import dci, evaluate, get_protocol
from disent_core.metrics.base import EvalContext, Points

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


@pytest.mark.parametrize("estimator", ["gbt", "hist_gbt", "hgb"])
def test_dci_bounds(estimator):
    data = identity_dataset(num_factors=5, num_values=5)
    protocol = get_protocol("dlib2019").with_sizes(num_train=500, num_test=500)
    protocol = protocol.override({"dci.estimator": estimator})

    def dup(x: np.ndarray) -> np.ndarray:
        return np.hstack([identity(x), identity(x)])

    good = evaluate(identity, data, protocol, metrics=["dci"])
    assert good["dci.disentanglement"] >= 0.9 and good["dci.completeness"] >= 0.9
    assert good["dci.informativeness_test"] >= 0.99
    redundant = evaluate(dup, data, protocol, metrics=["dci"])
    assert redundant["dci.disentanglement"] >= 0.9
    if estimator == "gbt":  # ties between the copies are broken at random: importance is shared
        assert redundant["dci.completeness"] == pytest.approx(1 - np.log(2) / np.log(10), abs=0.1)
    else:  # histogram boosting always splits on the first copy (in the canonical order)
        assert redundant["dci.completeness"] >= 0.9
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


def synthetic_codes(num_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Factors (N, 3) of sizes 4, 6, 8 and codes (N, 8): each factor scaled to [0, 1] plus noise
    (sd 0.05), a mix of the first two, four pure-noise dimensions."""
    rng = np.random.default_rng(seed)
    sizes = np.array([4, 6, 8])
    factors = rng.integers(0, sizes, size=(num_points, 3))
    scaled = factors / (sizes - 1)
    noise = rng.normal(size=(num_points, 8))
    codes = noise.copy()
    codes[:, :3] = scaled + 0.05 * noise[:, :3]
    codes[:, 3] = 0.7 * scaled[:, 0] + 0.3 * scaled[:, 1] + 0.05 * noise[:, 3]
    return codes, factors


def dci_on(codes: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], estimator: str) -> dict:
    protocol = get_protocol("dlib2019").with_sizes(num_train=len(codes[0]), num_test=len(test[0]))
    protocol = protocol.override({"dci.estimator": estimator})
    point_sets = {"train": Points(*codes), "test": Points(*test)}
    ctx = EvalContext(None, protocol, 0, None, np.arange(codes[1].shape[1]), point_sets=point_sets)
    return dci.compute(ctx)


@pytest.mark.slow
def test_histogram_dci_tracks_gradient_boosting():
    train, test = synthetic_codes(5000, 0), synthetic_codes(1000, 1)
    compatible, fast = dci_on(train, test, "gbt"), dci_on(train, test, "hist_gbt")
    assert fast["disentanglement"] == pytest.approx(compatible["disentanglement"], abs=0.05)
    assert fast["completeness"] == pytest.approx(compatible["completeness"], abs=0.05)
    assert fast["informativeness_test"] == pytest.approx(compatible["informativeness_test"], abs=0.05)


def test_histogram_dci_is_deterministic_and_permutation_invariant():
    (codes, factors), test = synthetic_codes(600, 0), synthetic_codes(300, 1)
    first = dci_on((codes, factors), test, "hist_gbt")
    assert dci_on((codes, factors), test, "hist_gbt") == first
    order = np.random.default_rng(2).permutation(codes.shape[1])
    permuted = dci_on((codes[:, order], factors), (test[0][:, order], test[1]), "hist_gbt")
    assert permuted == pytest.approx(first, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["hist_gbt", "hgb"])
def test_fast_dci_estimators_rank_like_gbt(estimator):
    # not comparable with gbt's numbers, but the same verdict: aligned codes beat rotated ones
    data = identity_dataset(num_factors=4, num_values=5)
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    protocol = get_protocol("dlib2019").with_sizes(num_train=1000, num_test=500)
    for name in ("gbt", estimator):
        chosen = protocol.override({"dci.estimator": name})
        aligned = evaluate(identity, data, chosen, metrics=["dci"])["dci.disentanglement"]
        rotated = evaluate(lambda x: identity(x) @ rotation, data, chosen, metrics=["dci"])
        assert aligned >= rotated["dci.disentanglement"] + 0.3, name


@pytest.mark.slow
def test_identity_at_full_dlib2019_sizes(identity_data):
    metrics = ["beta_vae", "factor_vae", "mig", "unsupervised", "irs"]
    scores = evaluate(identity, identity_data, "dlib2019", metrics=metrics)
    assert scores["beta_vae.eval_accuracy"] == 1.0
    assert scores["factor_vae.eval_accuracy"] == 1.0
    assert 0.97 <= scores["mig.discrete_mig"] <= 1.0
    assert scores["irs.IRS"] >= 0.99
    assert abs(scores["unsupervised.gaussian_total_correlation"]) < 0.01
