import numpy as np
import pytest
import torch

from disent_core.data.dataset import GroundTruthDataset, ObservationTransform
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import ArrayStore
from disent_core.data.stream import TrainingStream


def _dataset(transform=None):
    space = FactorSpace(("a", "b"), (4, 5))
    # image i holds the value i in every pixel, so a batch reveals which grid points were drawn
    images = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None, None], 4, axis=2)
    images = np.repeat(images, 4, axis=3)
    return GroundTruthDataset("toy", space, ArrayStore(images), transform=transform)


def _ids(batch):
    return batch[:, 0, 0, 0].tolist()


def test_batches_are_uint8_nchw_and_uniform():
    stream = TrainingStream(_dataset(), batch_size=50, seed=0, prefetch=0)
    batch = next(stream)
    assert batch.dtype == torch.uint8 and batch.shape == (50, 1, 4, 4)
    counts = np.bincount(np.concatenate([_ids(next(stream)) for _ in range(200)]), minlength=20)
    assert counts.min() > 0.8 * counts.mean()


@pytest.mark.parametrize("prefetch", [0, 3])
def test_position_restores_the_exact_sequence(prefetch):
    stream = TrainingStream(_dataset(), batch_size=8, seed=7, prefetch=prefetch)
    first = [next(stream) for _ in range(5)]
    state = stream.state_dict()
    rest = [next(stream) for _ in range(5)]
    stream.close()
    again = TrainingStream(_dataset(), batch_size=8, seed=7, prefetch=prefetch)
    again.load_state_dict(state)
    resumed = [next(again) for _ in range(5)]
    again.close()
    assert state["position"] == 5
    for a, b in zip(rest, resumed, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])


def test_prefetch_does_not_change_the_stream():
    a = TrainingStream(_dataset(), batch_size=8, seed=3, prefetch=0)
    b = TrainingStream(_dataset(), batch_size=8, seed=3, prefetch=2)
    for _ in range(10):
        assert torch.equal(next(a), next(b))
    b.close()


def test_different_seeds_give_different_batches():
    a = next(TrainingStream(_dataset(), batch_size=16, seed=0, prefetch=0))
    b = next(TrainingStream(_dataset(), batch_size=16, seed=1, prefetch=0))
    assert not torch.equal(a, b)


def test_batch_size_mismatch_on_restore_is_an_error():
    stream = TrainingStream(_dataset(), batch_size=8, seed=0, prefetch=0)
    with pytest.raises(ValueError, match="batch size 4"):
        stream.load_state_dict({"seed": 0, "position": 3, "batch_size": 4})


class _Boom(ObservationTransform):
    def __call__(self, images, rng):
        raise RuntimeError("broken transform")


def test_errors_in_the_prefetch_thread_reach_the_consumer():
    stream = TrainingStream(_dataset(_Boom()), batch_size=4, seed=0, prefetch=2)
    with pytest.raises(RuntimeError, match="broken transform"):
        next(stream)
    stream.close()


class _Half(ObservationTransform):
    def __call__(self, images, rng):
        return images.astype(np.float32) / 510.0 + rng.uniform(0, 0.01, size=images.shape).astype(np.float32)


def test_variant_datasets_stream_float_batches():
    batch = next(TrainingStream(_dataset(_Half()), batch_size=4, seed=0, prefetch=0))
    assert batch.dtype == torch.float32
    assert float(batch.max()) <= 1.0
