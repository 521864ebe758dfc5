"""The engine: representations, shared samples, determinism, invariances, errors."""

import time

import numpy as np
import pytest
import torch
from metric_fixtures import identity, identity_dataset, small

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import ProceduralStore
from disent_core.errors import MetricError, UnknownNameError
from disent_core.metrics import METRICS, base, evaluate, get_protocol, metric_names
from disent_core.metrics.base import EvalContext, prefetched
from disent_core.metrics.representation import CPU_BATCH_SIZE
from disent_core.metrics.sampling import stream_rng

POINT_METRICS = ["mig", "dci", "sap", "modularity", "unsupervised", "irs"]
FAST_METRICS = ["beta_vae", "factor_vae", "mig", "sap", "modularity", "unsupervised", "irs"]

_MIX = np.random.default_rng(0).normal(size=(4, 6))
_MIX[:, :4] += 3 * np.eye(4)
_WAVE = np.random.default_rng(1).normal(size=(4, 6))


def entangled(x: np.ndarray) -> np.ndarray:
    """A deterministic, continuous, partly entangled 6-dim code of 4 identity factors."""
    factors = identity(x)
    return factors @ _MIX + 0.7 * np.sin(factors @ _WAVE * 3.1)


@pytest.fixture(scope="module")
def data4():
    return identity_dataset(num_factors=4, num_values=4)


def test_keys_are_prefixed_and_follow_dlib_names(identity_data):
    scores = evaluate(identity, identity_data, small(), metrics=FAST_METRICS)
    expected = {f"{m}.{k}" for m in FAST_METRICS for k in METRICS[m].keys}
    assert set(scores) == expected
    assert {"mig.discrete_mig", "factor_vae.eval_accuracy", "sap.SAP_score", "irs.IRS"} <= expected
    assert all(isinstance(v, float) for v in scores.values())
    assert metric_names()[:3] == ["beta_vae", "factor_vae", "mig"]


def test_result_records_protocol_seed_and_versions(identity_data):
    protocol = small()
    scores = evaluate(identity, identity_data, protocol, seed=7, metrics=["mig"])
    assert scores.protocol == protocol.name and scores.protocol_hash == protocol.hash
    tags = scores.metadata()
    assert tags["protocol"] == protocol.name and tags["protocol_hash"] == protocol.hash
    assert tags["seed"] == "7" and tags["protocol_comparable"] == "false"
    assert "version.scikit-learn" in tags
    assert set(scores.timings) == {"points", "mig"}


def test_result_pickles_with_its_provenance(identity_data):
    import pickle

    scores = evaluate(identity, identity_data, small(), seed=2, metrics=["mig"])
    copy = pickle.loads(pickle.dumps(scores))
    assert dict(copy) == dict(scores) and copy.metadata() == scores.metadata()


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_seed_must_be_a_non_negative_integer(identity_data, seed):
    with pytest.raises(ValueError, match="seed"):
        evaluate(identity, identity_data, small(), seed=seed, metrics=["mig"])


def test_shared_point_sets_are_encoded_once(identity_data):
    seen = []

    def counting(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return identity(x)

    protocol = get_protocol("dlib2019").with_sizes(num_train=3000, num_test=1500)
    evaluate(counting, identity_data, protocol, metrics=["mig", "sap", "modularity", "irs", "unsupervised"])
    chunk = protocol.chunk_size
    assert sum(seen) == chunk * (-(-3000 // chunk) + -(-1500 // chunk))


@pytest.mark.parametrize(
    "seconds", [[0.0] * 5, [0.02] * 5, [0.0, 0.02, 0.0, 0.02, 0.02]]  # inline, background, mixed
)
def test_prefetched_runs_tasks_one_at_a_time_in_order(seconds):
    events = []

    def task(i: int):
        def run() -> int:
            events.append(("start", i))
            time.sleep(seconds[i])
            events.append(("end", i))
            return i * i

        return run

    results = []
    for result in prefetched(task(i) for i in range(5)):
        events.append(("consumed", result))
        results.append(result)
    assert results == [0, 1, 4, 9, 16]
    runs = [e for e in events if e[0] != "consumed"]
    assert runs == [(what, i) for i in range(5) for what in ("start", "end")]
    assert list(prefetched(iter([]))) == []


def nuisance_dataset() -> GroundTruthDataset:
    """3 x 4 x 5 grid whose middle factor is a nuisance factor, observations (1, 1, 3) as in
    ``identity_dataset``: every latent point has four observations."""
    space = FactorSpace(("a", "n", "b"), (3, 4, 5), latent_indices=(0, 2))

    def render(full: np.ndarray) -> np.ndarray:
        return full.astype(np.uint8)[:, None, None, :]

    store = ProceduralStore(render, space.index_to_factors, space.size, (1, 1, 3))
    return GroundTruthDataset("nuisance", space, store)


def nuisance_code(x: np.ndarray) -> np.ndarray:
    """A code that sees the nuisance factor, so that its draws show in the scores."""
    a, n, b = identity(x).T
    return np.stack([a + 0.4 * n, b - 0.3 * n * a, np.sin(a * b + n)], axis=1)


@pytest.mark.parametrize("data", ["data4", "nuisance"])
def test_repeated_grid_points_are_encoded_once_with_the_same_scores(data, data4, monkeypatch):
    dataset = data4 if data == "data4" else nuisance_dataset()
    protocol = small(num_train=300, num_eval=200, num_variance_estimate=300).override({"chunk_size": 64})
    metrics = ["beta_vae", "factor_vae"]
    rows = []

    def run(**settings) -> dict[str, float]:
        with monkeypatch.context() as patch:
            for name, value in settings.items():
                patch.setattr(base, name, value)
            rows.clear()
            return dict(evaluate(counting, dataset, protocol, seed=5, metrics=metrics))

    def counting(x: np.ndarray) -> np.ndarray:
        rows.append(len(x))
        return nuisance_code(x) if data == "nuisance" else entangled(x)

    every_draw = run(GATHER_SECONDS_PER_ROW=float("inf"))
    drawn = sum(rows)
    once = run(GATHER_SECONDS_PER_ROW=0.0)
    encoded = sum(rows)
    over_budget = run(GATHER_SECONDS_PER_ROW=0.0, GRID_CODES_BYTES=0)
    assert sum(rows) == drawn
    monkeypatch.setattr(GroundTruthDataset, "observations_are_deterministic", False)
    streamed = run()
    assert sum(rows) == drawn
    assert once == every_draw == over_budget == streamed
    # the BetaVAE pairs, the FactorVAE batches (both of 64) and one chunk of points for the variances
    assert drawn == (300 + 200) * 64 * 2 + (300 + 200) * 64 + 320
    # each grid point once in the whole evaluation, besides the probed chunks (three of one
    # BetaVAE pair or FactorVAE batch) of each of the four calls
    probed = 2 * base.PROBE_TASKS * 128 + 2 * base.PROBE_TASKS * 64
    assert encoded <= probed + len(dataset) + 320


def test_same_seed_same_numbers_different_seed_different_samples(data4):
    protocol = small(num_train=600, num_test=300, num_eval=200, num_variance_estimate=600)
    first = evaluate(entangled, data4, protocol, seed=3, metrics=FAST_METRICS)
    again = evaluate(entangled, data4, protocol, seed=3, metrics=FAST_METRICS)
    assert dict(first) == dict(again)
    other = evaluate(entangled, data4, protocol, seed=4, metrics=FAST_METRICS)
    assert first["mig.discrete_mig"] != other["mig.discrete_mig"]

    def context(seed: int) -> EvalContext:
        return EvalContext(data4, protocol, seed, lambda x: identity(x), np.arange(4))

    a, b = context(3).draw_points("train", 500), context(4).draw_points("train", 500)
    np.testing.assert_array_equal(a.factors, context(3).draw_points("train", 500).factors)
    assert not np.array_equal(a.factors, b.factors)
    assert not np.array_equal(a.factors, context(3).draw_points("test", 500).factors)
    # a metric that needs fewer points sees a prefix of the same sample
    np.testing.assert_array_equal(context(3).draw_points("train", 2000).factors[:500], a.factors)


def test_parallel_and_sequential_fits_agree(data4):
    protocol = small(num_train=250, num_test=200, num_eval=100)
    metrics = ["dci", "sap", "modularity", "beta_vae"]
    assert dict(evaluate(entangled, data4, protocol, metrics=metrics, n_jobs=1)) == dict(
        evaluate(entangled, data4, protocol, metrics=metrics, n_jobs=2)
    )


@pytest.mark.parametrize(
    ("name", "metrics"), [("corrected", ["mig", "factor_vae", "dci"]), ("dlib2019", ["factor_vae"])]
)
def test_rescaling_and_permuting_codes_changes_nothing(data4, name, metrics):
    protocol = get_protocol(name).with_sizes(
        num_train=300, num_test=200, num_eval=300, num_variance_estimate=500, batch_size=16
    )
    scale = np.array([0.5, 3.7, 1.3, 2.0, 0.9, 7.1])
    order = np.array([4, 2, 0, 5, 1, 3])
    base = evaluate(entangled, data4, protocol, metrics=metrics)
    scaled = evaluate(lambda x: entangled(x) * scale, data4, protocol, metrics=metrics)
    permuted = evaluate(lambda x: entangled(x)[:, order], data4, protocol, metrics=metrics)
    for other in (scaled, permuted):
        assert other.keys() == base.keys()
        for key in base:
            assert other[key] == pytest.approx(base[key], abs=1e-12), key
    # the codes are entangled enough that the scores are not trivially 0 or 1
    for key in {"mig.discrete_mig", "dci.disentanglement", "factor_vae.eval_accuracy"} & base.keys():
        assert 0.0 < base[key] < 1.0, key


def test_factor_vae_index_quirk_only_changes_num_active_dims(data4):
    def with_dead_dim(x: np.ndarray) -> np.ndarray:
        return np.hstack([np.zeros((len(x), 1)), entangled(x)])

    sizes = dict(num_eval=300, num_variance_estimate=500, batch_size=16)
    quirk = evaluate(with_dead_dim, data4, small("dlib2019", **sizes), metrics=["factor_vae"])
    fixed = evaluate(with_dead_dim, data4, small("corrected", **sizes), metrics=["factor_vae"])
    assert quirk["factor_vae.num_active_dims"] == 7 and fixed["factor_vae.num_active_dims"] == 6
    assert quirk["factor_vae.eval_accuracy"] == fixed["factor_vae.eval_accuracy"]


def test_one_value_factor_refused_by_dlib2019_and_dropped_by_corrected():
    data = identity_dataset(sizes=(4, 1, 4, 4))
    with pytest.raises(MetricError, match=r"f1.*corrected"):
        evaluate(identity, data, small("dlib2019"), metrics=["mig"])
    scores = evaluate(identity, data, small("corrected"), metrics=["mig", "factor_vae", "beta_vae"])
    assert scores["mig.discrete_mig"] > 0.9 and scores["beta_vae.eval_accuracy"] > 0.9
    assert "f1" in scores.notes["factors"]
    # metrics that do not use factors still run under dlib2019
    assert "unsupervised.mutual_info_score" in evaluate(identity, data, small(), metrics=["unsupervised"])


@pytest.mark.parametrize(
    ("representation", "match"),
    [
        (lambda x: np.zeros((len(x), 0)), "empty"),
        (lambda x: np.full((len(x), 3), np.nan), "NaN"),
        (lambda x: np.zeros(len(x)), "shape"),
        (lambda x: np.zeros((len(x) + 1, 3)), "shape"),
    ],
    ids=["empty", "nan", "1d", "wrong-length"],
)
def test_bad_representations_raise(data4, representation, match):
    with pytest.raises(MetricError, match=match):
        evaluate(representation, data4, small(), metrics=["mig"])


def test_too_few_samples_or_dimensions_raise():
    binary = identity_dataset(sizes=(2,) * 8)
    tiny = get_protocol("dlib2019").with_sizes(num_train=2, num_test=2)
    with pytest.raises(MetricError, match="too few samples"):
        evaluate(identity, binary, tiny, metrics=["dci"])
    with pytest.raises(MetricError, match="two code dimensions"):
        evaluate(lambda x: identity(x)[:, :1], binary, small(), metrics=["mig"])


def test_unknown_metric_and_bad_representation(data4):
    with pytest.raises(UnknownNameError, match="did you mean mig"):
        evaluate(identity, data4, small(), metrics=["migg"])
    with pytest.raises(TypeError, match="callable"):
        evaluate(42, data4, small(), metrics=["mig"])


class _GaussianEncoder(torch.nn.Module):
    """An nn.Module returning (mean, logvar) like a VAE encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        with torch.no_grad():
            self.linear.weight.copy_(255.0 * torch.eye(4))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.linear(x.flatten(1))
        return mean, torch.zeros_like(mean)


def test_module_returning_mean_and_logvar(data4):
    module = _GaussianEncoder().train()
    scores = evaluate(module, data4, small(), metrics=["mig", "reconstruction"])
    assert scores["mig.discrete_mig"] > 0.9
    assert module.training  # mode restored
    assert "reconstruction" in scores.notes and "reconstruction.reconstruction_error" not in scores


class _Autoencoder(_GaussianEncoder):
    """Not a disent_core method: an ``Autoencoder`` by its posterior and reconstruction loss."""

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[0]

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self(x)

    def reconstruction_loss(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return (z.sum(dim=1) - x.flatten(1).sum(dim=1)).square().mean()


def test_any_autoencoder_gets_reconstruction_through_the_protocol(data4):
    module = _Autoencoder()
    scores = evaluate(module, data4, small(), metrics=["reconstruction"])
    assert "reconstruction" not in scores.notes
    factors = data4.sample_factors(small().reconstruction.num_points, stream_rng(0, "reconstruction"))
    x = torch.from_numpy(data4.observations_from_full_factors(factors, None))
    with torch.no_grad():
        mean = module(x)[0]
        expected = float(module.reconstruction_loss(x, mean))
    assert scores["reconstruction.reconstruction_error"] == pytest.approx(expected, rel=1e-5)
    assert scores["reconstruction.kl"] == pytest.approx(
        float(0.5 * (mean.double() ** 2).mean(dim=0).sum()), rel=1e-5)


def test_method_gets_reconstruction_and_active_latents():
    from disent_core.data.stores import ArrayStore
    from disent_core.methods.base import MethodContext
    from disent_core.methods.beta_vae import BetaVAE, BetaVAEConfig
    from disent_core.methods.losses import gaussian_kl_per_dim, reconstruction_loss

    space = FactorSpace(("a", "b"), (4, 4))
    images = np.zeros((16, 1, 64, 64), dtype=np.uint8)
    for i in range(16):
        a, b = divmod(i, 4)
        images[i, 0, 16 * a : 16 * a + 16, 16 * b : 16 * b + 16] = 255
    data = GroundTruthDataset("squares", space, ArrayStore(images))
    torch.manual_seed(0)
    context = MethodContext((1, 64, 64), 3, "l2", 16, torch.Generator().manual_seed(0))
    method = BetaVAE(BetaVAEConfig(name="beta_vae", beta=4.0), context)
    protocol = small(num_train=300, num_test=100, num_points=100)
    scores = evaluate(method, data, protocol, seed=5, metrics=["mig", "reconstruction"])
    assert "reconstruction" not in scores.notes and "mig.discrete_mig" in scores

    # the same 100 held-out points, scored by hand with the training loss terms
    factors = data.sample_factors(100, stream_rng(5, "reconstruction"))
    x = torch.from_numpy(data.observations_from_full_factors(factors, None))
    with torch.no_grad():
        mean, logvar = method.encoder(x)
        recon = float(reconstruction_loss(method.decoder(mean), x, "l2"))
        kl = gaussian_kl_per_dim(mean, logvar).numpy()
    assert scores["reconstruction.reconstruction_error"] == pytest.approx(recon, rel=1e-5)
    assert scores["reconstruction.kl"] == pytest.approx(float(kl.sum()), rel=1e-5)
    assert scores["reconstruction.num_active_latents"] == float(np.sum(kl > 0.01))


class RowRecorder(torch.nn.Module):
    """A batch-independent 6-dim code of ``data4``'s observations that records its batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return torch.from_numpy(entangled(x.numpy())).float() * self.scale


def test_modules_run_in_cpu_batches_and_callables_get_whole_chunks(data4):
    protocol = small(num_train=300, num_test=100, num_eval=100, num_variance_estimate=300)
    metrics = ["beta_vae", "mig"]
    module = RowRecorder()
    by_default = evaluate(module, data4, protocol, metrics=metrics, device="cpu")
    assert max(module.batches) == CPU_BATCH_SIZE
    module.batches.clear()
    assert evaluate(module, data4, protocol, metrics=metrics, device="cpu", batch_size=100) == by_default
    assert max(module.batches) == 100

    calls: list[int] = []

    def recorded(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return entangled(x)

    whole = evaluate(recorded, data4, protocol, metrics=metrics)
    assert max(calls) == protocol.chunk_size
    calls.clear()
    assert evaluate(recorded, data4, protocol, metrics=metrics, batch_size=10) == whole
    assert max(calls) == 10


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_batch_size_must_be_a_positive_integer(data4, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(identity, data4, small(), metrics=["mig"], batch_size=batch_size)
