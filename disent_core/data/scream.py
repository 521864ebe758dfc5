"""The Scream (Munch), background painting of disentanglement_lib's ``scream_dsprites``.

dlib downloads ``The_Scream.jpg`` from Wikimedia Commons, shrinks it with PIL ``thumbnail`` to fit
(350, 274) and scales it to [0, 1]; the portrait painting becomes about 274 x 221 (H x W). No
checksum was ever published and the Wikimedia file can be revised, so its SHA-256 is trusted on
first use: recorded in the cache's ``meta.json`` and required of every later copy. Pass
``sha256=`` to pin a known hash instead. Differences from dlib: ``thumbnail((350, 274))`` instead
of the 3-tuple modern Pillow rejects, and ``Resampling.LANCZOS`` explicitly.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from disent_core.data.sources import get_source

THUMBNAIL_SIZE = (350, 274)
IMAGE_FILE = "scream.npy"


def convert_scream(raw: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    """Converter of the ``scream`` source: JPEG -> thumbnail as uint8 (H, W, 3) npy.

    Args:
        raw: {filename: path} of the one verified raw file, ``The_Scream.jpg``.
        out_dir: the directory ``scream.npy`` is written to.

    Returns:
        The cache's ``content``: the image file name, its (H, W, 3) shape, the thumbnail bound and
        the resampling filter.
    """
    (path,) = raw.values()
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    rgb.thumbnail(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    array = np.asarray(rgb, dtype=np.uint8)
    np.save(out_dir / IMAGE_FILE, array)
    return {"image": IMAGE_FILE, "shape": list(array.shape), "thumbnail": list(THUMBNAIL_SIZE),
            "resample": "LANCZOS"}


def load_scream_image(
    data_root: str | os.PathLike | None = None, download: bool = True, sha256: str | None = None
) -> np.ndarray:
    """The Scream as float32 (H, W, 3) in [0, 1], downloading and preparing it when needed.

    Args:
        data_root: the data root (default: ``data_root()``).
        download: whether the JPEG may be downloaded when absent.
        sha256: a SHA-256 (hex) to pin instead of the one trusted on first use; a cache prepared
            from another copy is rebuilt.

    Returns:
        float32 (H, W, 3) in [0, 1] (about 274 x 221).

    Raises:
        DataNotFoundError: the image is not available (offline and not placed by hand).
        ChecksumError: a copy does not match the pinned or first-seen SHA-256.
    """
    source = get_source("scream")
    files, force = None, False
    if sha256:
        files = [replace(spec, sha256=sha256) for spec in source.files]
        recorded = (source.read_meta(data_root) or {}).get("files", [{}])[0].get("sha256")
        force = source.is_prepared(data_root) and recorded != files[0].sha256
    cache = source.prepare(data_root, download=download, files=files, force=force)
    content = source.load_meta(data_root)["content"]
    return np.load(cache / content["image"]).astype(np.float32) / np.float32(255.0)
