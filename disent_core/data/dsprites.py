"""dSprites (Matthey et al. 2017): the real dataset from its npz, or the procedural renderer.

Factors, in storage order (C order, posY fastest): color (1), shape (3), scale (6), orientation
(40), posX (32), posY (32); 737,280 binary 64x64 images. As in disentanglement_lib,
``dsprites_full`` scores factors 1..5 (the constant colour is a nuisance factor) and
``dsprites_noshape`` scores factors 2..5 (shape is resampled for every observation).

The real npz is converted once into a bit-packed cache: one row of ``np.packbits`` per image (512
bytes), 377 MB for the full set instead of 3 GB as uint8. The ``imgs`` member is streamed out of
the zip archive block by block, so conversion never holds the 3 GB array; the pickled Python-2
``metadata`` needs ``allow_pickle=True, encoding="latin1"``. Factor sizes and values come from that
metadata. Orientation 0 and 2*pi are both levels and give identical images (upstream quirk).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.provenance import DatasetProvenance
from disent_core.data.sources import get_source
from disent_core.data.stores import PackedBitsStore, packed_row_bytes
from disent_core.errors import ConfigError, DataError

NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
SIZES = (1, 3, 6, 40, 32, 32)
FULL_LATENTS = (1, 2, 3, 4, 5)
NOSHAPE_LATENTS = (2, 3, 4, 5)
PACKED_FILE = "images_packed.npy"
_BLOCK_ROWS = 8192


def _text(value: Any) -> Any:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _iter_npy_member(
    path: Path, member: str, block_rows: int
) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Stream a C-order array out of an npz member in blocks of rows, never holding all of it."""
    with zipfile.ZipFile(path) as archive, archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DataError(f"{path}:{member}: unsupported npy format version {version}")
        if fortran_order or dtype.hasobject:
            raise DataError(f"{path}:{member}: expected a C-order numeric array")
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for start in range(0, shape[0], block_rows):
            n = min(block_rows, shape[0] - start)
            buffer = f.read(n * row_bytes)
            if len(buffer) != n * row_bytes:
                raise DataError(f"{path}:{member} is truncated at row {start}; delete it and download again")
            yield shape, np.frombuffer(buffer, dtype=dtype).reshape((n, *shape[1:]))


def convert_dsprites(raw: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    """Converter of the ``dsprites`` source: npz -> bit-packed images + factor info.

    Args:
        raw: {filename: path} of the one verified raw file, the dSprites npz.
        out_dir: the directory the packed ``images_packed.npy`` is written to.

    Returns:
        The cache's ``content``: factors (names, sizes, values), image shape (1, 64, 64), the images
        file name and the npz's title.

    Raises:
        DataError: the npz's factors, grid order or images are not dSprites'.
    """
    (path,) = raw.values()
    with np.load(path, allow_pickle=True, encoding="latin1") as npz:
        metadata = {_text(k): v for k, v in npz["metadata"][()].items()}
        classes = npz["latents_classes"]
    names = tuple(_text(n) for n in metadata["latents_names"])
    if names != NAMES:
        raise DataError(f"{path}: unexpected dSprites factor names {names}, expected {NAMES}")
    sizes = tuple(int(s) for s in metadata["latents_sizes"])
    possible = {_text(k): v for k, v in metadata["latents_possible_values"].items()}
    values = [np.asarray(possible[n], dtype=np.float64).ravel().tolist() for n in names]
    n_images = int(np.prod(sizes))
    if classes.shape != (n_images, len(sizes)) or not np.array_equal(
        np.ravel_multi_index(classes.T, sizes), np.arange(n_images)
    ):
        raise DataError(f"{path}: latents_classes are not the C-order grid of sizes {sizes}")

    packed, start = None, 0
    for shape, block in _iter_npy_member(path, "imgs.npy", _BLOCK_ROWS):
        if packed is None:
            if shape[0] != n_images or len(shape) != 3:
                raise DataError(f"{path}: imgs has shape {shape}, expected ({n_images}, H, W)")
            packed = np.lib.format.open_memmap(out_dir / PACKED_FILE, mode="w+", dtype=np.uint8,
                                               shape=(n_images, packed_row_bytes(shape[1:])))
        if block.max(initial=0) > 1:
            raise DataError(f"{path}: imgs must hold 0/1 pixels, found {int(block.max())}")
        packed[start:start + len(block)] = np.packbits(block.reshape(len(block), -1), axis=1)
        start += len(block)
    if packed is None:
        raise DataError(f"{path}: imgs is empty")
    packed.flush()
    del packed
    return {
        "factors": {"names": list(names), "sizes": list(sizes), "values": values},
        "image_shape": [1, int(shape[1]), int(shape[2])],
        "images": PACKED_FILE,
        "title": _text(metadata.get("title", "")),
    }


def _real(data_root: str | os.PathLike | None, download: bool) -> GroundTruthDataset:
    source = get_source("dsprites")
    cache = source.prepare(data_root, download=download)
    content = source.load_meta(data_root)["content"]
    factors = content["factors"]
    space = FactorSpace(tuple(factors["names"]), tuple(factors["sizes"]), FULL_LATENTS,
                        tuple(tuple(v) for v in factors["values"]))
    store = PackedBitsStore(np.load(cache / content["images"]), tuple(content["image_shape"]))
    return GroundTruthDataset("dsprites_full", space, store,
                              provenance=DatasetProvenance.of_source("dsprites", data_root))


def dsprites_base(
    source: str = "real",
    data_root: str | os.PathLike | None = None,
    download: bool = True,
    sizes: tuple[int, ...] | None = None,
    **kw: Any,
) -> GroundTruthDataset:
    """Plain dSprites (latent factors 1..5) from the real data or the procedural renderer.

    ``sizes`` and ``kw`` go to ``dsprites_procedural`` (reduced grids and renderer options); the
    real dataset is always the full grid and takes neither.

    Args:
        source: ``"real"`` (the npz, prepared once) or ``"procedural"`` (rendered).
        data_root: the data root of the real data (default: ``data_root()``).
        download: whether the real npz may be downloaded when absent.
        sizes: levels per factor of a reduced procedural grid (5 or 6 sizes; default: full).
        **kw: further ``dsprites_procedural`` options (``cache``).

    Returns:
        The dataset, named ``"dsprites_full"``.

    Raises:
        ConfigError: an unknown ``source``, or ``sizes``/``kw`` with the real data.
        DataError: the real data is missing, corrupt or cannot be downloaded.
    """
    if source == "procedural":
        from disent_core.data.dsprites_render import dsprites_procedural

        dataset = dsprites_procedural(sizes=sizes, **kw)
        space = dataset.factor_space
        return replace(dataset, name="dsprites_full", factor_space=FactorSpace(
            space.names, space.sizes, FULL_LATENTS, space.values))
    if source != "real":
        raise ConfigError(f"dSprites source must be 'real' or 'procedural', got {source!r}")
    if sizes is not None or kw:
        given = (["sizes"] if sizes is not None else []) + sorted(kw)
        raise ConfigError(
            f"real dSprites is always the full grid and takes no {', '.join(given)}; "
            "use source='procedural' for reduced grids and renderer options"
        )
    return _real(data_root, download)


def dsprites_full(
    source: str = "real",
    data_root: str | os.PathLike | None = None,
    download: bool = True,
    sizes: tuple[int, ...] | None = None,
    **kw: Any,
) -> GroundTruthDataset:
    """dlib's ``dsprites_full``: latent shape, scale, orientation, posX, posY.

    Args:
        source: ``"real"`` or ``"procedural"``.
        data_root: the data root of the real data (default: ``data_root()``).
        download: whether the real npz may be downloaded when absent.
        sizes: levels per factor of a reduced procedural grid (default: full).
        **kw: further ``dsprites_procedural`` options.

    Returns:
        The dataset ``"dsprites_full"``.

    Raises:
        ConfigError: an unknown ``source``, or ``sizes``/``kw`` with the real data.
        DataError: the real data is missing, corrupt or cannot be downloaded.
    """
    return dsprites_base(source, data_root, download, sizes, **kw)


def dsprites_noshape(
    source: str = "real",
    data_root: str | os.PathLike | None = None,
    download: bool = True,
    sizes: tuple[int, ...] | None = None,
    **kw: Any,
) -> GroundTruthDataset:
    """dlib's ``dsprites_noshape``: latent scale, orientation, posX, posY; shape is a nuisance.

    Args:
        source: ``"real"`` or ``"procedural"``.
        data_root: the data root of the real data (default: ``data_root()``).
        download: whether the real npz may be downloaded when absent.
        sizes: levels per factor of a reduced procedural grid (default: full).
        **kw: further ``dsprites_procedural`` options.

    Returns:
        The dataset ``"dsprites_noshape"``.

    Raises:
        ConfigError: an unknown ``source``, or ``sizes``/``kw`` with the real data.
        DataError: the real data is missing, corrupt or cannot be downloaded.
    """
    dataset = dsprites_base(source, data_root, download, sizes, **kw)
    space = dataset.factor_space
    return replace(dataset, name="dsprites_noshape", factor_space=FactorSpace(
        space.names, space.sizes, NOSHAPE_LATENTS, space.values))
