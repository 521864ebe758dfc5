"""The datasets work as torch Datasets in DataLoader worker processes (fork and spawn)."""

import numpy as np
import pytest
import torch

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import NpyMemmapStore


def _memmap_dataset(tmp_path):
    images = np.arange(24, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 2, 2), np.uint8)
    np.save(tmp_path / "images.npy", images * 10)
    return GroundTruthDataset("toy", FactorSpace(("a", "b"), (4, 6)), NpyMemmapStore(tmp_path / "images.npy"))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_memmap_dataset_in_worker_processes(tmp_path, context):
    dataset = _memmap_dataset(tmp_path)
    dataset.store[np.array([0])]  # open the map in the parent first: workers must reopen their own
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=6, num_workers=2, multiprocessing_context=context, shuffle=False
    )
    batches = torch.cat(list(loader))
    assert batches.shape == (24, 1, 2, 2)
    np.testing.assert_allclose(batches[:, 0, 0, 0].numpy(), np.arange(24) * 10 / 255, rtol=1e-6)


def test_memmap_store_reads_unsorted_indices(tmp_path):
    store = _memmap_dataset(tmp_path).store
    out = store[np.array([5, 1, 5, 0])]
    np.testing.assert_array_equal(out[:, 0, 0, 0], [50, 10, 50, 0])
    assert store.resident_bytes == 0
