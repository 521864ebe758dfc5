import numpy as np
import pytest
import torch

from disent_core.data.dataset import GroundTruthDataset, ObservationTransform
from disent_core.data.registry import get_dataset
from disent_core.data.resident import ResidentImages, ResidentStream, resident_images
from disent_core.data.stores import PackedBitsStore
from disent_core.data.stream import TrainingStream
from disent_core.errors import ConfigError
from disent_core.population import train_population
from disent_core.train import CHECKPOINT_NAME, load_trained, train

CPU = torch.device("cpu")
SMALL_DSPRITES = {"sizes": [3, 2, 4, 4, 4]}
SMALL_SHAPES3D = {"sizes": [2, 2, 2, 2, 2, 3]}


def _config(steps, **train):
    return {
        "dataset": {"name": "dsprites_procedural", "options": SMALL_DSPRITES},
        "method": {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": 3, "report_every": 6, "prefetch": 0, **train},
    }


def _assert_same_streams(dataset, seed=5, batches=6):
    host = TrainingStream(dataset, batch_size=16, seed=seed, prefetch=0)
    resident = ResidentStream(dataset, ResidentImages(dataset, CPU), batch_size=16, seed=seed)
    for _ in range(batches):
        a, b = next(host), next(resident)
        assert a.dtype == b.dtype == torch.uint8
        assert torch.equal(a, b)
    assert resident.state_dict() == host.state_dict()


@pytest.mark.parametrize(
    ("name", "options", "packed"),
    [("dsprites_procedural", SMALL_DSPRITES, True), ("shapes3d_procedural", SMALL_SHAPES3D, False)],
)
def test_resident_batches_equal_the_host_streams(name, options, packed):
    dataset = get_dataset(name, **options)
    assert ResidentImages(dataset, CPU).packed is packed
    _assert_same_streams(dataset)


def test_an_already_packed_store_is_copied_as_it_is():
    dense = get_dataset("dsprites_procedural", **SMALL_DSPRITES)
    bits = np.packbits(dense.store[np.arange(len(dense))].reshape(len(dense), -1) != 0, axis=1)
    dataset = GroundTruthDataset("packed", dense.factor_space, PackedBitsStore(bits, dense.store.shape))
    images = ResidentImages(dataset, CPU)
    assert images.nbytes == len(dataset) * 512
    _assert_same_streams(dataset)


def test_a_binary_store_with_other_pixel_values_is_refused():
    dataset = get_dataset("dsprites_procedural", **SMALL_DSPRITES)
    dataset.store.render = lambda factors: np.full((len(factors), 1, 64, 64), 128, np.uint8)
    with pytest.raises(ValueError, match="other than 0 and 255"):
        ResidentImages(dataset, CPU).build()


def test_data_on_device_trains_to_the_same_numbers():
    host = train(_config(steps=6, report_every=3, data_on_device=False))
    resident = train(_config(steps=6, report_every=3, data_on_device=True))
    assert [r.terms for r in host.reports] == [r.terms for r in resident.reports]
    sa, sb = host.method.state_dict(), resident.method.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert resident.config.train.data_on_device is True


def test_resume_with_resident_data_is_step_exact(tmp_path):
    straight = train(_config(steps=8, data_on_device=True))
    train(_config(steps=4, data_on_device=True), checkpoint_dir=tmp_path)
    resumed = train(_config(steps=8, data_on_device=True), resume_from=tmp_path / CHECKPOINT_NAME)
    sa, sb = straight.method.state_dict(), resumed.method.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert straight.last_report.terms == resumed.last_report.terms


def test_auto_is_the_host_stream_on_the_cpu_and_nothing_is_built_before_a_batch():
    dataset = get_dataset("dsprites_procedural", **SMALL_DSPRITES)
    assert resident_images(dataset, CPU, "auto") is None
    assert resident_images(dataset, CPU, False) is None
    images = resident_images(dataset, CPU, True)
    assert images is not None and not images.built
    next(ResidentStream(dataset, images, batch_size=4, seed=0))
    assert images.built


class _Tint(ObservationTransform):
    def __call__(self, images, rng):
        return images.astype(np.float32) / 255.0 * rng.uniform(0.5, 1.0)


def test_a_dataset_with_a_transform_is_refused_when_forced_and_host_streamed_on_auto():
    dense = get_dataset("dsprites_procedural", **SMALL_DSPRITES)
    dataset = GroundTruthDataset("tinted", dense.factor_space, dense.store, transform=_Tint())
    with pytest.raises(ConfigError, match=r"true but dataset 'tinted' draws a random _Tint"):
        resident_images(dataset, CPU, True)
    assert resident_images(dataset, torch.device("cuda", 0), "auto") is None  # refused before any CUDA call


def test_forcing_a_dataset_larger_than_half_the_available_host_memory_is_refused(monkeypatch):
    dataset = get_dataset("dsprites_procedural", **SMALL_DSPRITES)
    needed = ResidentImages(dataset, CPU).nbytes
    monkeypatch.setattr("disent_core.data.resident.available_memory", lambda: 2 * needed - 1)
    with pytest.raises(ConfigError, match=r"true but dataset 'dsprites_procedural' takes .* 50% of the"):
        resident_images(dataset, CPU, True)
    monkeypatch.setattr("disent_core.data.resident.available_memory", lambda: 2 * needed)
    assert resident_images(dataset, CPU, True).nbytes == needed


def test_forcing_a_variant_through_train_is_refused_with_the_field_name():
    config = _config(steps=2, data_on_device=True)
    config["dataset"] = {"name": "color_dsprites", "options": {"source": "procedural", **SMALL_DSPRITES}}
    with pytest.raises(ConfigError, match=r"train\.data_on_device is true but dataset 'color_dsprites'"):
        train(config)


def test_loading_a_trained_model_builds_no_resident_data(tmp_path, monkeypatch):
    train(_config(steps=2, data_on_device=True), checkpoint_dir=tmp_path)
    monkeypatch.setattr(ResidentImages, "build", lambda self: pytest.fail("built the resident data"))
    method, config = load_trained(tmp_path, device="cpu")
    assert config.train.data_on_device is True and not method.training


def test_a_population_with_resident_data_trains_to_the_same_numbers(monkeypatch):
    built = []
    monkeypatch.setattr(ResidentImages, "__init__", _recording(ResidentImages.__init__, built))
    members = [_config(steps=4, seed=seed, data_on_device=flag) for seed in (3, 5) for flag in (True, False)]
    resident = train_population(members[0::2])
    host = train_population(members[1::2])
    assert len(built) == 1  # one resident copy for the streams of every seed
    for a, b in zip(resident.members, host.members, strict=True):
        sa, sb = a.method.state_dict(), b.method.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _recording(init, calls):
    def wrapped(self, *args, **kwargs):
        calls.append(self)
        init(self, *args, **kwargs)

    return wrapped
