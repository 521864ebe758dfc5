"""3DShapes (Burgess & Kim 2018): 480,000 RGB 64x64 scenes from ``3dshapes.h5``.

Factors, in storage order (C order, orientation fastest): floor_hue (10), wall_hue (10),
object_hue (10), scale (8), shape (4), orientation (15). The h5 ``labels`` hold factor *values*
(floats); class indices are derived as the rank of each value among its column's unique values,
and the result must equal the C-order unravel of ``arange(N)`` (nothing is hard-coded, so the
README's wrong scale range cannot creep in).

The gzip-chunked ``images`` dataset is slow for random access, so it is converted once into a
uint8 NCHW ``.npy`` file, read sequentially a whole number of chunks at a time (never the whole
array, never as float). The dataset memory-maps that file: nothing is resident and DataLoader
workers reopen it per process. dlib instead converts everything to float32 (23.6 GB).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.provenance import DatasetProvenance
from disent_core.data.sources import get_source
from disent_core.data.stores import NpyMemmapStore
from disent_core.errors import DataError

NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
IMAGES_FILE = "images.npy"
_BLOCK_ROWS = 4096


def labels_to_classes(labels: np.ndarray) -> tuple[np.ndarray, list[list[float]]]:
    """Float label values (N, K) -> class indices (N, K) by rank, and each column's sorted values.

    Args:
        labels: (N, K) float factor values (rounded to 6 decimals before ranking).

    Returns:
        (classes (N, K) int64, per column the sorted unique values).
    """
    classes = np.empty(labels.shape, dtype=np.int64)
    values = []
    for k in range(labels.shape[1]):
        levels, classes[:, k] = np.unique(np.round(labels[:, k], 6), return_inverse=True)
        values.append(levels.tolist())
    return classes, values


def convert_shapes3d(raw: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    """Converter of the ``shapes3d`` source: h5 -> uint8 (N, 3, 64, 64) npy + factor info.

    Args:
        raw: {filename: path} of the one verified raw file, ``3dshapes.h5``.
        out_dir: the directory ``images.npy`` is written to.

    Returns:
        The cache's ``content``: factors (names, sizes, values), image shape (C, H, W) and the
        images file name.

    Raises:
        DataError: the h5's images or labels are not a full C-order grid of the expected form.
    """
    (path,) = raw.values()
    with h5py.File(path, "r") as f:
        images, labels = f["images"], f["labels"][()]
        n = images.shape[0]
        if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (n, len(NAMES)):
            raise DataError(
                f"{path}: expected uint8 images (N, H, W, 3) and labels (N, {len(NAMES)}), got "
                f"{images.dtype} {images.shape} and {labels.shape}"
            )
        classes, values = labels_to_classes(labels)
        sizes = tuple(len(v) for v in values)
        in_order = np.array_equal(np.ravel_multi_index(classes.T, sizes), np.arange(n))
        if int(np.prod(sizes)) != n or not in_order:
            raise DataError(f"{path}: labels are not a full C-order grid (levels per factor {sizes})")
        chunk_rows = images.chunks[0] if images.chunks else 1
        block = chunk_rows * max(1, _BLOCK_ROWS // chunk_rows)
        _, h, w, c = images.shape
        out = np.lib.format.open_memmap(out_dir / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(n, c, h, w))
        for start in range(0, n, block):
            out[start:start + block] = images[start:start + block].transpose(0, 3, 1, 2)
        out.flush()
        del out
    return {
        "factors": {"names": list(NAMES), "sizes": list(sizes), "values": values},
        "image_shape": [int(c), int(h), int(w)],
        "images": IMAGES_FILE,
    }


def shapes3d(data_root: str | os.PathLike | None = None, download: bool = True) -> GroundTruthDataset:
    """3DShapes over a memory-mapped uint8 cache, preparing it first when needed.

    Args:
        data_root: the data root (default: ``data_root()``).
        download: whether ``3dshapes.h5`` may be downloaded when absent.

    Returns:
        The dataset ``"shapes3d"``: 480,000 RGB (3, 64, 64) images, all six factors latent.

    Raises:
        DataError: the data is missing, corrupt or cannot be downloaded.
    """
    source = get_source("shapes3d")
    cache = source.prepare(data_root, download=download)
    content = source.load_meta(data_root)["content"]
    factors = content["factors"]
    space = FactorSpace(tuple(factors["names"]), tuple(factors["sizes"]),
                        values=tuple(tuple(v) for v in factors["values"]))
    return GroundTruthDataset("shapes3d", space, NpyMemmapStore(cache / content["images"]),
                              provenance=DatasetProvenance.of_source("shapes3d", data_root))
