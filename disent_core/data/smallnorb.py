"""SmallNORB (LeCun, Huang, Bottou 2004): 48,600 greyscale toy images, and its binary format.

The ``.mat`` files are not MATLAB files but NORB "binary matrices": a little-endian int32 magic
number giving the element type, an int32 ``ndim``, ``max(3, ndim)`` int32 dimensions (unused slots
are 1), then the row-major data; the files are published gzip'd. ``read_norb_matrix`` parses them.

Preparation reads camera 0 of the stereo pairs of both chunks (training: instances 4, 6, 7, 8, 9;
testing: 0, 1, 2, 3, 5), divides azimuth by 2, sorts the rows into the C order of (category,
instance, elevation, azimuth, lighting) = (5, 10, 9, 18, 6), resizes 96 -> 64 with PIL LANCZOS
(dlib's ANTIALIAS) and writes one uint8 (N, 1, 64, 64) ``.npy``.

``smallnorb(split="all")`` is disentanglement_lib's version: train and test merged, latent
factors category, elevation, azimuth, lighting, and the instance a 10-valued nuisance factor.
``split="train"`` is disent's: the training chunk only, with the instance a 5-valued latent factor
(``split="test"`` likewise for the testing chunk).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.provenance import DatasetProvenance
from disent_core.data.sources import get_source
from disent_core.data.stores import ArrayStore, NpyMemmapStore
from disent_core.errors import ConfigError, DataError

NAMES = ("category", "instance", "elevation", "azimuth", "lighting")
LATENTS_ALL = (0, 2, 3, 4)
IMAGES_FILE = "images.npy"
IMAGE_SIZE = 64
MAGIC_DTYPES = {
    0x1E3D4C55: np.dtype("u1"),
    0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C56: np.dtype("<i2"),
    0x1E3D4C51: np.dtype("<f4"),
    0x1E3D4C53: np.dtype("<f8"),
}
"""NORB binary-matrix magic numbers and their element types (0x1E3D4C52, "packed", is unused)."""
_BLOCK_ROWS = 1024


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_header(f: IO[bytes], path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    head = f.read(8)
    if len(head) != 8:
        raise DataError(f"{path}: too short for a NORB binary matrix header")
    magic, ndim = (int(v) for v in np.frombuffer(head, dtype="<i4"))
    if magic not in MAGIC_DTYPES:
        raise DataError(f"{path}: unknown NORB magic number {magic:#x}; is this a SmallNORB .mat file?")
    if not 1 <= ndim <= 16:
        raise DataError(f"{path}: implausible number of dimensions {ndim}")
    dims = np.frombuffer(f.read(4 * max(3, ndim)), dtype="<i4")
    return MAGIC_DTYPES[magic], tuple(int(d) for d in dims[:ndim])


def read_norb_matrix(path: str | os.PathLike, camera: int | None = None) -> np.ndarray:
    """Read a NORB binary matrix (``.mat`` or ``.mat.gz``).

    With ``camera``, the matrix must be (N, 2, H, W) stereo pairs and only that camera is kept,
    read in blocks so the other camera is never held in memory.

    Args:
        path: the file, gzip'd or not (detected from its first bytes).
        camera: 0 or 1 to keep one camera of stereo pairs; None reads the whole matrix.

    Returns:
        The matrix in its element type (uint8 images, int32 labels ...): of the stored shape, or
        (N, H, W) with ``camera``.

    Raises:
        DataError: a bad header, a truncated file, or no stereo pairs with ``camera``.
    """
    path = Path(path)
    with _open(path) as f:
        dtype, shape = _read_header(f, path)
        if camera is None:
            count = int(np.prod(shape, dtype=np.int64))
            data = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
            if data.size != count:
                raise DataError(f"{path}: truncated, {data.size} of {count} elements")
            return data.reshape(shape)
        if len(shape) != 4 or shape[1] != 2:
            raise DataError(f"{path}: expected stereo pairs (N, 2, H, W), got shape {shape}")
        n, _, h, w = shape
        out = np.empty((n, h, w), dtype=dtype)
        row = 2 * h * w * dtype.itemsize
        for start in range(0, n, _BLOCK_ROWS):
            rows = min(_BLOCK_ROWS, n - start)
            buffer = f.read(rows * row)
            if len(buffer) != rows * row:
                raise DataError(f"{path}: truncated at row {start}")
            out[start:start + rows] = np.frombuffer(buffer, dtype=dtype).reshape(rows, 2, h, w)[:, camera]
        return out


def _chunk(raw: dict[str, Path], chunk: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    paths = {}
    for kind in ("dat", "cat", "info"):
        found = [p for name, p in raw.items() if f"-{chunk}-{kind}.mat" in name]
        if len(found) != 1:
            raise DataError(f"SmallNORB needs exactly one '*-{chunk}-{kind}.mat[.gz]' file, got {found}")
        paths[kind] = found[0]
    images = read_norb_matrix(paths["dat"], camera=0)
    category = read_norb_matrix(paths["cat"]).astype(np.int64)
    info = read_norb_matrix(paths["info"]).astype(np.int64)
    n = len(images)
    if category.shape != (n,) or info.shape != (n, 4):
        raise DataError(f"SmallNORB {chunk}: {n} images but cat {category.shape} and info {info.shape}")
    return images, category, info


def convert_smallnorb(raw: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    """Converter of the ``smallnorb`` source: 6 binary matrices -> sorted uint8 64x64 npy.

    Args:
        raw: {filename: path} of the six verified ``*-{training,testing}-{dat,cat,info}.mat.gz``.
        out_dir: the directory ``images.npy`` (N, 1, 64, 64) is written to.

    Returns:
        The cache's ``content``: factors (names, sizes, values: elevation and azimuth in degrees),
        the training instances, image shape, images file name and a note on the processing.

    Raises:
        DataError: a missing or malformed matrix, or rows that do not form a full factor grid.
    """
    train, test = _chunk(raw, "training"), _chunk(raw, "testing")
    images = np.concatenate([train[0], test[0]])
    category = np.concatenate([train[1], test[1]])
    info = np.concatenate([train[2], test[2]])
    if images.dtype != np.uint8:
        raise DataError(f"SmallNORB images must be uint8, got {images.dtype}")
    if np.any(info[:, 2] % 2):
        raise DataError("SmallNORB azimuth values must be even (0, 2, ..., 34)")
    columns = [category, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]]
    levels, classes = zip(*(np.unique(c, return_inverse=True) for c in columns), strict=True)
    sizes = tuple(len(v) for v in levels)
    index = np.ravel_multi_index(np.stack(classes), sizes)
    order = np.argsort(index)
    if not np.array_equal(index[order], np.arange(int(np.prod(sizes)))):
        raise DataError(f"SmallNORB rows do not form a full factor grid of sizes {sizes}")

    out = np.lib.format.open_memmap(out_dir / IMAGES_FILE, mode="w+", dtype=np.uint8,
                                    shape=(len(order), 1, IMAGE_SIZE, IMAGE_SIZE))
    for pos, row in enumerate(order):
        image = Image.fromarray(images[row]).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        out[pos, 0] = np.asarray(image)
    out.flush()
    del out
    category_v, instance_v, elevation_v, azimuth_v, lighting_v = (v.tolist() for v in levels)
    values = [
        category_v,
        instance_v,
        [30 + 5 * e for e in elevation_v],
        [20 * a for a in azimuth_v],
        lighting_v,
    ]
    return {
        "factors": {"names": list(NAMES), "sizes": list(sizes), "values": values},
        "train_instances": np.unique(train[2][:, 0]).tolist(),
        "image_shape": [1, IMAGE_SIZE, IMAGE_SIZE],
        "images": IMAGES_FILE,
        "processing": "camera 0; azimuth/2; rows sorted to C order; 96->64 with PIL LANCZOS",
    }


def smallnorb(
    data_root: str | os.PathLike | None = None, download: bool = True, split: str = "all"
) -> GroundTruthDataset:
    """SmallNORB: ``split="all"`` (dlib, instance a nuisance), ``"train"`` or ``"test"`` (disent).

    Args:
        data_root: the data root (default: ``data_root()``).
        download: whether the raw files may be downloaded when absent.
        split: ``"all"`` (48,600 images, memory-mapped), ``"train"`` or ``"test"`` (24,300 each,
            held in RAM, the instance a 5-valued latent factor).

    Returns:
        The dataset ``"smallnorb"`` or ``"smallnorb_<split>"``: greyscale (1, 64, 64) images.

    Raises:
        ConfigError: an unknown ``split``.
        DataError: the data is missing, corrupt or cannot be downloaded.
    """
    if split not in ("all", "train", "test"):
        raise ConfigError(f"SmallNORB split must be 'all', 'train' or 'test', got {split!r}")
    source = get_source("smallnorb")
    cache = source.prepare(data_root, download=download)
    content = source.load_meta(data_root)["content"]
    names, sizes = tuple(content["factors"]["names"]), tuple(content["factors"]["sizes"])
    values = [list(v) for v in content["factors"]["values"]]
    store = NpyMemmapStore(cache / content["images"])
    provenance = DatasetProvenance.of_source("smallnorb", data_root)
    if split == "all":
        space = FactorSpace(names, sizes, LATENTS_ALL, tuple(tuple(v) for v in values))
        return GroundTruthDataset("smallnorb", space, store, provenance=provenance)

    k = names.index("instance")
    in_train = np.isin(values[k], content["train_instances"])
    keep = np.flatnonzero(in_train if split == "train" else ~in_train)
    indices = np.arange(int(np.prod(sizes))).reshape(sizes).take(keep, axis=k).ravel()
    values[k] = [values[k][i] for i in keep]
    sub_sizes = (*sizes[:k], len(keep), *sizes[k + 1:])
    space = FactorSpace(names, sub_sizes, None, tuple(tuple(v) for v in values))
    return GroundTruthDataset(f"smallnorb_{split}", space, ArrayStore(store[indices]), provenance=provenance)
