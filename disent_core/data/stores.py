"""Observation stores: where the pixels of a ground-truth grid live.

Every store maps flat C-order grid indices to uint8 images of shape (N, C, H, W) with values in
0..255, whatever its backing: a RAM array, bit-packed binary images (dSprites: 360 MiB instead of
2.8 GiB), a memory-mapped ``.npy`` cache (opened lazily in each process, so it survives fork and
spawn into DataLoader workers), or a procedural renderer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


class ObservationStore:
    """Interface: ``store[indices] -> uint8 (N, C, H, W)``; ``shape`` is (C, H, W)."""

    shape: tuple[int, int, int]
    binary: bool = False
    """True when every pixel is 0 or 255 (binary images such as dSprites)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def resident_bytes(self) -> int:
        """Bytes this store keeps in process memory (memory maps and renderers count as 0)."""
        return 0


class ArrayStore(ObservationStore):
    """Images held in RAM as a uint8 (N, C, H, W) array."""

    def __init__(self, images: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 (N, C, H, W) images, got {images.dtype} {images.shape}")
        self.images = images
        self.shape = tuple(images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        return self.images[np.asarray(indices, dtype=np.int64)]

    @property
    def resident_bytes(self) -> int:
        return int(self.images.nbytes)


def packed_row_bytes(image_shape: tuple[int, ...]) -> int:
    """Bytes of one image packed 8 pixels per byte (``np.packbits`` of its flattened pixels).

    Args:
        image_shape: the image's shape, e.g. (1, 64, 64).

    Returns:
        ceil(pixels / 8): 512 for a 64x64 binary image.
    """
    return (int(np.prod(image_shape)) + 7) // 8


class PackedBitsStore(ObservationStore):
    """Binary images packed 8 pixels per byte; unpacked to {0, 255} on access."""

    def __init__(self, packed: np.ndarray, shape: tuple[int, int, int]) -> None:
        pixels = int(np.prod(shape))
        row_bytes = packed_row_bytes(shape)
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != row_bytes:
            raise ValueError(
                f"expected uint8 packed rows of {row_bytes} bytes for images of shape "
                f"{shape}, got {packed.dtype} {packed.shape}"
            )
        self.packed = packed
        self.shape = tuple(shape)
        self._pixels = pixels
        self.binary = True

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        rows = self.packed[np.asarray(indices, dtype=np.int64)]
        bits = np.unpackbits(rows, axis=1, count=self._pixels)
        bits *= 255
        return bits.reshape((len(rows), *self.shape))

    @property
    def resident_bytes(self) -> int:
        return int(self.packed.nbytes)


class NpyMemmapStore(ObservationStore):
    """A uint8 (N, C, H, W) ``.npy`` file memory-mapped read-only, reopened in each process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pid: int | None = None
        self._array: np.ndarray | None = None
        array = self._open()
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(f"{self.path}: expected uint8 (N, C, H, W), got {array.dtype} {array.shape}")
        self.shape = tuple(array.shape[1:])
        self._len = len(array)

    def _open(self) -> np.ndarray:
        if self._array is None or self._pid != os.getpid():
            self._array = np.load(self.path, mmap_mode="r")
            self._pid = os.getpid()
        return self._array

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None
        state["_pid"] = None
        return state

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        out = np.empty((len(indices), *self.shape), dtype=np.uint8)
        out[order] = self._open()[indices[order]]
        return out


class ProceduralStore(ObservationStore):
    """Renders images on demand from their full factor vectors."""

    def __init__(
        self,
        render: Callable[[np.ndarray], np.ndarray],
        index_to_factors: Callable[[np.ndarray], np.ndarray],
        size: int,
        shape: tuple[int, int, int],
        binary: bool = False,
    ) -> None:
        self.render = render
        self.binary = binary
        self.index_to_factors = index_to_factors
        self._size = size
        self.shape = tuple(shape)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        return self.render(self.index_to_factors(np.asarray(indices, dtype=np.int64)))
