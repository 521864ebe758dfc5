"""The training data resident on the training device, sampled there (``train.data_on_device``).

A ``TrainingStream`` renders or reads every batch on the host, in a background thread: a GPU trial
waits on it when rendering is slower than a step, and several trials on one node compete for its
CPUs. ``ResidentImages`` holds the whole dataset as one uint8 tensor on the device instead (binary
datasets such as dSprites bit-packed, 8 pixels a byte, and unpacked there through a 256-row table;
others such as 3DShapes as uint8 (N, C, H, W)), and ``ResidentStream`` yields each batch by
gathering its grid indices from it.

The numbers do not change: ``ResidentStream`` draws the grid indices of batch ``b`` on the host with
``TrainingStream.draw`` (the same generator ``default_rng([seed, b])``, the same calls), and the
gathered images are the store's own bytes, so its batches are bit-identical to the host stream's for
the same (seed, position), and its ``state_dict`` is the same (seed, position, batch size): a
checkpoint resumes with either stream. Only datasets whose observations are their store's images are
eligible: a ``transform`` (the colour, noisy and scream variants) draws random float images per
batch on the host.

The tensor is built on the first batch, not when the stream is made (loading a trained model for
evaluation builds a run but draws no batch): every observation is read or rendered once, in chunks,
and copied to the device; a store that is already bit-packed (the real dSprites) is copied as it is.
``resident_images`` decides: ``auto`` is resident on CUDA when the tensor takes at most
``RESIDENT_MEMORY_FRACTION`` of the device's free memory, and never on the CPU (where the host
stream already runs beside the model); ``True`` forces it (on the CPU too) and refuses a dataset
that cannot be resident or whose tensor takes more than that share of the device's free memory (on
the CPU, of the host memory available: ``disent_core.memory.available_memory``); ``False`` never.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.stores import PackedBitsStore, packed_row_bytes
from disent_core.data.stream import TrainingStream
from disent_core.errors import ConfigError
from disent_core.memory import available_memory

RESIDENT_MEMORY_FRACTION = 0.5
"""``auto`` keeps the dataset on a CUDA device when it takes at most this share of its free memory."""
_CHUNK = 4096
"""Images read (or rendered), packed and copied to the device at a time while building."""

DataOnDevice = Literal["auto"] | bool
"""The values of ``train.data_on_device``."""


class ResidentImages:
    """A dataset's every observation in one uint8 tensor on ``device``, built on first use.

    Args:
        dataset: a dataset without a transform (``residency_problem`` is None).
        device: where the tensor lives.

    Raises:
        ConfigError: the dataset cannot be resident.
    """

    def __init__(self, dataset: GroundTruthDataset, device: torch.device) -> None:
        problem = residency_problem(dataset)
        if problem is not None:
            raise ConfigError(f"train.data_on_device: {problem}")
        self.dataset = dataset
        self.device = torch.device(device)
        self.shape = tuple(dataset.store.shape)
        self.packed = bool(dataset.store.binary)
        self._pixels = int(np.prod(self.shape))
        self._row_bytes = packed_row_bytes(self.shape) if self.packed else self._pixels
        self._tensor: torch.Tensor | None = None
        self._unpack: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the tensor takes on the device (known before it is built)."""
        return len(self.dataset) * self._row_bytes

    @property
    def built(self) -> bool:
        """True once the tensor has been built."""
        return self._tensor is not None

    def build(self) -> None:
        """Read (or render) every observation once and copy it to the device; no-op when built.

        Raises:
            ValueError: a store marked binary holds a pixel other than 0 or 255 (packing would change it).
        """
        if self._tensor is not None:
            return
        store, n = self.dataset.store, len(self.dataset)
        tensor = torch.empty((n, self._row_bytes), dtype=torch.uint8, device=self.device)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            if isinstance(store, PackedBitsStore):
                rows = np.ascontiguousarray(store.packed[start:stop])
            else:
                rows = store[np.arange(start, stop)].reshape(stop - start, self._pixels)
                if self.packed:
                    if np.any((rows != 0) & (rows != 255)):
                        raise ValueError(
                            f"dataset {self.dataset.name!r}: its store is marked binary but holds pixels "
                            "other than 0 and 255; it cannot be bit-packed"
                        )
                    rows = np.packbits(rows != 0, axis=1)
            tensor[start:stop].copy_(torch.from_numpy(rows))
        if self.packed:
            table = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1) * np.uint8(255)
            self._unpack = torch.from_numpy(table).to(self.device)
        self._tensor = tensor

    def gather(self, index: np.ndarray) -> torch.Tensor:
        """The images of grid indices, gathered (and unpacked) on the device; builds the tensor first.

        Args:
            index: (B,) integer flat C-order grid indices.

        Returns:
            (B, C, H, W) uint8 tensor on the device, equal to ``dataset.store[index]``.
        """
        self.build()
        index = torch.from_numpy(np.asarray(index, dtype=np.int64)).to(self.device)
        rows = self._tensor.index_select(0, index)
        if self.packed:  # each byte -> its 8 pixels in {0, 255}, in np.packbits' (big-endian) order
            bits = self._unpack.index_select(0, rows.reshape(-1).long())
            rows = bits.reshape(len(index), -1)[:, : self._pixels]
        return rows.reshape(len(index), *self.shape)


class ResidentStream(TrainingStream):
    """A ``TrainingStream`` whose (B, C, H, W) uint8 batches are gathered on the device.

    Its batches equal the host stream's for the same seed and position; nothing is prefetched (drawing
    the indices takes microseconds, and the gather runs asynchronously on a CUDA device).

    Args:
        dataset: the dataset ``images`` holds.
        images: the resident observations.
        batch_size: images per batch.
        seed: the stream's seed.
    """

    def __init__(
        self, dataset: GroundTruthDataset, images: ResidentImages, batch_size: int, seed: int
    ) -> None:
        super().__init__(dataset, batch_size, seed=seed, prefetch=0)
        self.images = images

    def batch(self, index: int) -> torch.Tensor:
        """The batch at position ``index`` (pure function of seed and index), on the device.

        Args:
            index: the batch's position in the stream, >= 0.

        Returns:
            (batch_size, C, H, W) uint8 tensor on the resident device.
        """
        grid, _ = self.draw(index)
        return self.images.gather(grid)


def residency_problem(dataset: GroundTruthDataset) -> str | None:
    """Why ``dataset`` cannot be held on the device, or None when it can.

    Args:
        dataset: the training dataset.

    Returns:
        A sentence naming the dataset and the reason, or None.
    """
    if dataset.transform is not None:
        return (
            f"dataset {dataset.name!r} draws a random {type(dataset.transform).__name__} for every batch "
            "on the host, so its batches cannot be gathered from a resident copy"
        )
    return None


def resident_images(
    dataset: GroundTruthDataset, device: torch.device, choice: DataOnDevice
) -> ResidentImages | None:
    """The resident observations ``train.data_on_device`` asks for, or None for the host stream.

    Nothing is rendered or allocated here (``ResidentImages`` builds on its first batch).

    Args:
        dataset: the training dataset.
        device: the training device.
        choice: ``"auto"`` (resident on CUDA when the dataset fits in ``RESIDENT_MEMORY_FRACTION`` of
            the free memory), ``True`` (always; refused when impossible) or ``False`` (never).

    Returns:
        The (not yet built) resident images, or None.

    Raises:
        ConfigError: ``choice`` is ``True`` and the dataset has a transform or does not fit.
    """
    if choice is False or (choice == "auto" and device.type != "cuda"):
        return None
    problem = residency_problem(dataset)
    if problem is not None:
        if choice is True:
            raise ConfigError(f"train.data_on_device is true but {problem}; use 'auto' or false")
        return None
    images = ResidentImages(dataset, device)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_memory()
    if free is not None and images.nbytes > RESIDENT_MEMORY_FRACTION * free:
        if choice is True:
            raise ConfigError(
                f"train.data_on_device is true but dataset {dataset.name!r} takes "
                f"{images.nbytes / 2**20:.0f} MiB, more than {RESIDENT_MEMORY_FRACTION:.0%} of the "
                f"{free / 2**20:.0f} MiB free on {device}; use 'auto' or false"
            )
        return None
    return images


def training_stream(
    dataset: GroundTruthDataset, batch_size: int, seed: int, prefetch: int, resident: ResidentImages | None
) -> TrainingStream:
    """The stream of a run: gathered from ``resident`` when given, else rendered on the host.

    Args:
        dataset: the training dataset.
        batch_size: images per batch.
        seed: the stream's seed.
        prefetch: batches the host stream prepares ahead (unused by a resident stream).
        resident: the resident observations (``resident_images``), or None.

    Returns:
        A ``ResidentStream`` or a ``TrainingStream``; their batches are equal.
    """
    if resident is None:
        return TrainingStream(dataset, batch_size, seed=seed, prefetch=prefetch)
    return ResidentStream(dataset, resident, batch_size, seed=seed)
