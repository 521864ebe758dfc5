"""Test data for the real-data path: tiny files in the exact on-disk layouts of the originals,
written at test time, and a local HTTP server (127.0.0.1, ephemeral port) with Range support and
switchable faults (corrupt bytes, truncated responses, no Range support, error statuses)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from disent_core.data.files import FileSpec

# --- helpers -------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec_for(path: Path, url: str | None = None, **kw) -> FileSpec:
    """A FileSpec for a fixture file, with its real SHA-256 and size."""
    return FileSpec(path.name, (url or path.as_uri(),), size=kw.pop("size", path.stat().st_size),
                    sha256=kw.pop("sha256", sha256_of(path)), **kw)


def grid(sizes: tuple[int, ...]) -> np.ndarray:
    """All factor vectors of a grid, in C order."""
    return np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=-1)


# --- dSprites npz ----------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python-2 ``str`` opcodes, as the 2017 dSprites npz was pickled."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _as_py2(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):
        return {_as_py2(k): _as_py2(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_as_py2(v) for v in value)
    return value


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@dataclass
class DSpritesFixture:
    path: Path
    imgs: np.ndarray
    sizes: tuple[int, ...]
    values: list[np.ndarray]


DSPRITES_SIZES = (1, 3, 2, 4, 3, 3)


def write_dsprites_npz(path: Path, sizes: tuple[int, ...] = DSPRITES_SIZES, seed: int = 0) -> DSpritesFixture:
    """A reduced dSprites npz: imgs uint8 0/1, latents_values, latents_classes, py2-pickled metadata."""
    rng = np.random.default_rng(seed)
    names = ("color", "shape", "scale", "orientation", "posX", "posY")
    values = [np.array([1.0]), np.arange(1.0, sizes[1] + 1), np.linspace(0.5, 1, sizes[2]),
              np.linspace(0, 2 * np.pi, sizes[3]), np.linspace(0, 1, sizes[4]), np.linspace(0, 1, sizes[5])]
    classes = grid(sizes).astype(np.int64)
    latents_values = np.stack([values[k][classes[:, k]] for k in range(6)], axis=-1)
    imgs = (rng.random((len(classes), 64, 64)) < 0.3).astype(np.uint8)
    metadata = {
        "title": "dSprites dataset", "date": "April 2017", "version": 1,
        "author": "lmatthey@google.com", "description": "reduced test fixture",
        "latents_names": names, "latents_sizes": np.array(sizes),
        "latents_possible_values": dict(zip(names, values, strict=True)),
    }
    meta_array = np.empty((), dtype=object)
    meta_array[()] = _as_py2(metadata)
    meta_npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(meta_npy, {"descr": "|O", "fortran_order": False, "shape": ()})
    _Py2Pickler(meta_npy, protocol=2).dump(meta_array)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.npy", meta_npy.getvalue())
        archive.writestr("imgs.npy", _npy_bytes(imgs))
        archive.writestr("latents_classes.npy", _npy_bytes(classes))
        archive.writestr("latents_values.npy", _npy_bytes(latents_values))
    return DSpritesFixture(path, imgs, sizes, values)




# --- 3dshapes.h5 -----------------------------------------------------------------------------------


@dataclass
class Shapes3dFixture:
    path: Path
    images: np.ndarray
    sizes: tuple[int, ...]
    values: list[np.ndarray]


SHAPES3D_SIZES = (2, 2, 2, 2, 2, 3)


def write_shapes3d_h5(path: Path, sizes: tuple[int, ...] = SHAPES3D_SIZES, seed: int = 0,
                      shuffle: bool = False) -> Shapes3dFixture:
    """A reduced 3dshapes.h5: gzip'd, chunked uint8 ``images`` (N, 64, 64, 3), float ``labels``."""
    rng = np.random.default_rng(seed)
    values = [np.linspace(0, 0.9, 10)[:sizes[0]], np.linspace(0, 0.9, 10)[-sizes[1]:],
              np.linspace(0, 0.9, 10)[::5][:sizes[2]], np.linspace(0.75, 1.25, sizes[3]),
              np.arange(float(sizes[4])), np.linspace(-30, 30, sizes[5])]
    classes = grid(sizes)
    labels = np.stack([values[k][classes[:, k]] for k in range(6)], axis=-1)
    images = rng.integers(0, 256, size=(len(classes), 64, 64, 3), dtype=np.uint8)
    if shuffle:
        order = rng.permutation(len(classes))
        labels, images = labels[order], images[order]
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(10, 64, 64, 3), compression="gzip")
        f.create_dataset("labels", data=labels, chunks=(10, 6), compression="gzip")
    return Shapes3dFixture(path, images, sizes, values)




# --- SmallNORB binary matrices ---------------------------------------------------------------------

NORB_MAGIC = {np.dtype("u1"): 0x1E3D4C55, np.dtype("<i4"): 0x1E3D4C54}


def norb_bytes(array: np.ndarray) -> bytes:
    """A NORB binary matrix: magic, ndim, max(3, ndim) dims (unused = 1), row-major data."""
    dims = list(array.shape) + [1] * (3 - array.ndim)
    header = struct.pack(f"<ii{len(dims)}i", NORB_MAGIC[array.dtype], array.ndim, *dims)
    return header + array.tobytes()


@dataclass
class NorbFixture:
    directory: Path
    paths: list[Path]
    camera0: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)
    """(category, instance, elevation, azimuth/2, lighting) -> 96x96 camera-0 image."""
    levels: dict[str, list[int]] = field(default_factory=dict)


NORB_LEVELS = {
    "category": [0, 1], "train_instances": [4, 6], "test_instances": [0, 1],
    "elevation": [0, 3], "azimuth": [0, 2, 34], "lighting": [0, 5],
}


def write_norb(directory: Path, seed: int = 0) -> NorbFixture:
    """Six gzip'd SmallNORB files with real names and headers; rows shuffled; 96x96 stereo pairs."""
    rng = np.random.default_rng(seed)
    fixture = NorbFixture(directory, [], levels=NORB_LEVELS)
    for chunk, tag, instances in (("training", "46789", NORB_LEVELS["train_instances"]),
                                  ("testing", "01235", NORB_LEVELS["test_instances"])):
        rows = np.array([
            (c, i, e, a, light)
            for c in NORB_LEVELS["category"] for i in instances for e in NORB_LEVELS["elevation"]
            for a in NORB_LEVELS["azimuth"] for light in NORB_LEVELS["lighting"]
        ], dtype=np.int32)
        rows = rows[rng.permutation(len(rows))]
        dat = rng.integers(0, 256, size=(len(rows), 2, 96, 96), dtype=np.uint8)
        for row, pair in zip(rows, dat, strict=True):
            c, i, e, a, light = (int(v) for v in row)
            fixture.camera0[(c, i, e, a // 2, light)] = pair[0]
        arrays = {"dat": dat, "cat": np.ascontiguousarray(rows[:, 0]),
                  "info": np.ascontiguousarray(rows[:, 1:])}
        for kind, array in arrays.items():
            path = directory / f"smallnorb-5x{tag}x9x18x6x2x96x96-{chunk}-{kind}.mat.gz"
            path.write_bytes(gzip.compress(norb_bytes(array), compresslevel=1))
            fixture.paths.append(path)
    return fixture




# --- The Scream ------------------------------------------------------------------------------------


def write_scream_jpeg(path: Path, seed: int = 0) -> Path:
    """A portrait JPEG (300 x 380, W x H) with smooth colour bands."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:380, 0:300] / 380.0
    phase = rng.random(3) * np.pi
    rgb = np.stack([0.5 + 0.5 * np.sin(6 * y + 3 * x + p) for p in phase], axis=-1)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path




# --- local HTTP server -----------------------------------------------------------------------------


class FileServer(http.server.ThreadingHTTPServer):
    """Serves files from ``root`` with Range support and switchable faults."""

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.corrupt: set[str] = set()
        self.truncate: dict[str, int] = {}
        """name -> bytes to send before dropping the connection (applies once)."""
        self.no_range = False
        self.fail: dict[str, list[int]] = {}
        """name -> HTTP statuses to answer, one per request, before the file is served."""
        self.requests: list[tuple[str, str | None]] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        self.server.requests.append((name, self.headers.get("Range")))
        path = self.server.root / name
        if self.server.fail.get(name):
            self.send_error(self.server.fail[name].pop(0))
            return
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if name in self.server.corrupt:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        total, start = len(data), 0
        requested = self.headers.get("Range")
        if requested and not self.server.no_range:
            start = int(requested.removeprefix("bytes=").split("-")[0])
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if name in self.server.truncate:
            body = body[:self.server.truncate.pop(name)]
            self.close_connection = True
        self.wfile.write(body)




