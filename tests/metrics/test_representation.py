"""Representation kinds: the mean and the sampled representation, and the grid-code cache."""

import pickle

import numpy as np
import pytest
import torch
from metric_fixtures import identity, identity_dataset, small

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import ArrayStore
from disent_core.errors import MetricError
from disent_core.methods.base import MethodContext
from disent_core.methods.beta_vae import BetaVAE, BetaVAEConfig
from disent_core.methods.did import DiD, DiDConfig
from disent_core.metrics import REPRESENTATION_KINDS, base, evaluate
from disent_core.metrics.base import EvalContext
from disent_core.metrics.representation import RepresentationFunction, representation_function

GROUP_METRICS = ["beta_vae", "factor_vae"]
LOGVAR = -1.0


@pytest.fixture(scope="module")
def data4():
    return identity_dataset(num_factors=4, num_values=4)


def posterior(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian encoder of ``data4``: mean = the factors, log-variance ``LOGVAR``."""
    mean = identity(x)
    return mean, np.full(mean.shape, LOGVAR)


class Counting:
    """``posterior`` that counts the observations it encodes."""

    def __init__(self) -> None:
        self.rows = 0

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.rows += len(x)
        return posterior(x)


def group_protocol():
    return small(num_train=200, num_eval=100, num_variance_estimate=200).override({"chunk_size": 64})


def test_kinds_are_mean_and_sampled():
    assert REPRESENTATION_KINDS == ("mean", "sampled")


def test_a_sampled_representation_is_never_served_cached_codes(data4, monkeypatch):
    monkeypatch.setattr(base, "GATHER_SECONDS_PER_ROW", 0.0)  # the cache whenever it is allowed
    protocol = group_protocol()
    mean = Counting()
    evaluate(mean, data4, protocol, seed=1, metrics=GROUP_METRICS)
    sampled = Counting()

    def refuse(*args, **kwargs):
        raise AssertionError("a sampled representation was served codes of grid points")

    monkeypatch.setattr(EvalContext, "codes_of_grid_points", refuse)
    evaluate(sampled, data4, protocol, seed=1, metrics=GROUP_METRICS, representation_kind="sampled")
    drawn = (200 + 100) * 64 * 2 + (200 + 100) * 64 + protocol.chunk_size * -(-200 // protocol.chunk_size)
    assert sampled.rows == drawn
    assert mean.rows < drawn // 2  # data4 has 256 grid points


def _one_grid_point_many_times(kind: str) -> tuple[np.ndarray, int]:
    """Codes (64, D) of 8 groups of 8 copies of one grid point through ``encode_groups``, and the
    number of observations encoded."""
    dataset = identity_dataset(num_factors=4, num_values=4)
    protocol = small().override({"chunk_size": 8})
    counting = Counting()
    encode = RepresentationFunction(counting, kind, kind == "mean", None)
    ctx = EvalContext(dataset, protocol, 0, encode, np.arange(4), deterministic=encode.deterministic)
    part = np.zeros((8, 8, 4), dtype=np.int64)
    codes = ctx.encode_groups((part,), ctx.rng("test"), lambda c: c)
    return codes.reshape(-1, codes.shape[-1]), counting.rows


def test_two_encodings_of_one_grid_point_differ_only_when_sampled(monkeypatch):
    monkeypatch.setattr(base, "GATHER_SECONDS_PER_ROW", 0.0)
    mean, mean_rows = _one_grid_point_many_times("mean")
    sampled, sampled_rows = _one_grid_point_many_times("sampled")
    assert len(np.unique(mean, axis=0)) == 1
    assert mean_rows == base.PROBE_TASKS * 8  # the probed chunks, then the grid table
    assert len(np.unique(sampled, axis=0)) == 64
    assert sampled_rows == 64
    np.testing.assert_allclose(sampled.mean(axis=0), mean[0], atol=4 * np.exp(LOGVAR / 2) / 8)


def test_the_cache_needs_a_deterministic_representation_and_dataset(data4):
    protocol = small()
    assert EvalContext(data4, protocol, 0, identity, np.arange(4)).reuses_grid_codes
    ctx = EvalContext(data4, protocol, 0, identity, np.arange(4), deterministic=False)
    assert not ctx.reuses_grid_codes
    with pytest.raises(RuntimeError, match="deterministic representation"):
        next(ctx.codes_of_grid_points(np.arange(10), ctx.rng("test")))


def test_a_callable_declaring_itself_random_is_not_cached(data4, monkeypatch):
    monkeypatch.setattr(base, "GATHER_SECONDS_PER_ROW", 0.0)
    protocol = group_protocol()
    plain, declared = Counting(), Counting()
    declared.deterministic = False
    first = evaluate(plain, data4, protocol, seed=1, metrics=GROUP_METRICS)
    second = evaluate(declared, data4, protocol, seed=1, metrics=GROUP_METRICS)
    assert dict(first) == dict(second)
    assert plain.rows < declared.rows
    declared.deterministic = "no"
    with pytest.raises(TypeError, match="deterministic"):
        evaluate(declared, data4, protocol, metrics=["mig"])


def test_sampled_evaluation_is_reproducible_and_differs_from_mean(data4):
    protocol = small(num_train=600, num_test=300, num_eval=200, num_variance_estimate=600)
    metrics = ["beta_vae", "factor_vae", "mig", "sap"]
    mean = evaluate(posterior, data4, protocol, seed=3, metrics=metrics)
    assert dict(mean) == dict(evaluate(lambda x: posterior(x)[0], data4, protocol, seed=3, metrics=metrics))
    sampled = evaluate(posterior, data4, protocol, seed=3, metrics=metrics, representation_kind="sampled")
    again = evaluate(posterior, data4, protocol, seed=3, metrics=metrics, representation_kind="sampled")
    other = evaluate(posterior, data4, protocol, seed=4, metrics=metrics, representation_kind="sampled")
    assert dict(sampled) == dict(again)
    assert sampled["mig.discrete_mig"] != other["mig.discrete_mig"]
    assert sampled["mig.discrete_mig"] < mean["mig.discrete_mig"]
    # the draws depend on neither the batch size nor the other metrics evaluated
    batched = evaluate(
        posterior, data4, protocol, seed=3, metrics=metrics, representation_kind="sampled", batch_size=7
    )
    assert dict(batched) == dict(sampled)
    alone = evaluate(posterior, data4, protocol, seed=3, metrics=["mig"], representation_kind="sampled")
    assert alone["mig.discrete_mig"] == sampled["mig.discrete_mig"]


def test_result_records_the_representation_kind(data4):
    mean = evaluate(posterior, data4, small(), metrics=["mig"])
    sampled = evaluate(posterior, data4, small(), metrics=["mig"], representation_kind="sampled")
    assert mean.representation_kind == "mean" and mean.metadata()["representation"] == "mean"
    assert sampled.representation_kind == "sampled" and sampled.metadata()["representation"] == "sampled"
    assert sampled.protocol_hash == mean.protocol_hash == small().hash
    assert pickle.loads(pickle.dumps(sampled)).metadata() == sampled.metadata()


def test_sampled_needs_a_mean_and_logvar(data4):
    with pytest.raises(MetricError, match=r"must return \(mean, logvar\)"):
        evaluate(identity, data4, small(), metrics=["mig"], representation_kind="sampled")
    with pytest.raises(ValueError, match="representation_kind must be one of 'mean', 'sampled'"):
        evaluate(posterior, data4, small(), metrics=["mig"], representation_kind="median")


@pytest.fixture(scope="module")
def squares():
    """A 64x64 dataset of two factors with 4 values: a white square at (16a, 16b)."""
    images = np.zeros((16, 1, 64, 64), dtype=np.uint8)
    for i in range(16):
        a, b = divmod(i, 4)
        images[i, 0, 16 * a : 16 * a + 16, 16 * b : 16 * b + 16] = 255
    return GroundTruthDataset("squares", FactorSpace(("a", "b"), (4, 4)), ArrayStore(images))


def _context() -> MethodContext:
    torch.manual_seed(0)
    return MethodContext((1, 64, 64), 3, "l2", 16, torch.Generator().manual_seed(0))


def test_a_vae_method_is_scored_on_samples_of_its_posterior(squares):
    method = BetaVAE(BetaVAEConfig(name="beta_vae", beta=4.0), _context()).train()
    protocol = small(num_train=300, num_test=100, num_points=100)
    metrics = ["mig", "unsupervised", "reconstruction"]
    mean = evaluate(method, squares, protocol, seed=5, metrics=metrics)
    sampled = evaluate(method, squares, protocol, seed=5, metrics=metrics, representation_kind="sampled")
    assert method.training  # mode restored
    assert dict(sampled) == dict(
        evaluate(method, squares, protocol, seed=5, metrics=metrics, representation_kind="sampled")
    )
    key = "unsupervised.gaussian_total_correlation"
    assert sampled[key] != mean[key]
    # the reconstruction term decodes the posterior mean whatever the kind
    assert sampled["reconstruction.reconstruction_error"] == mean["reconstruction.reconstruction_error"]


def test_sampled_codes_are_mean_plus_scaled_noise_from_the_seed(squares):
    method = BetaVAE(BetaVAEConfig(name="beta_vae", beta=4.0), _context())
    x = squares.observations_at(np.arange(16), None)
    with representation_function(method, "sampled", "cpu", 5) as encode:
        assert not encode.deterministic
        codes = encode(x, noise_seed=11)
        np.testing.assert_array_equal(encode(x, noise_seed=11), codes)
        assert not np.array_equal(encode(x, noise_seed=12), codes)
    with torch.no_grad():
        mean, logvar = (t.double() for t in method.encoder(torch.from_numpy(x)))
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    expected = mean + torch.exp(logvar / 2) * eps
    np.testing.assert_allclose(codes, expected.numpy(), rtol=1e-6, atol=1e-6)
    with representation_function(method, "mean", "cpu", 5) as encode:
        assert encode.deterministic
        np.testing.assert_allclose(encode(x), mean.numpy(), rtol=1e-6, atol=1e-6)


def test_did_has_no_sampled_representation(squares):
    method = DiD(DiDConfig(), _context())
    with pytest.raises(MetricError, match=r"method 'did' has no posterior.*'mean'"):
        evaluate(method, squares, small(), metrics=["mig"], representation_kind="sampled")
