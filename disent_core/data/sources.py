"""Downloadable data sources and their one-time preparation into compact caches.

A ``DataSource`` is a set of raw files (``FileSpec``: mirrors, size, checksums) plus a converter
that turns them, once, into a compact cache that loads fast. Layout under the data root::

    <root>/<source>/raw/<filename>        raw downloads, verified, kept as they are
    <root>/<source>/prepared/meta.json    schema version, hashes of the raw files actually used,
                                          output file sizes, factor info
    <root>/<source>/prepared/*.npy        converted arrays

Preparation is download -> verify -> convert, under a per-source file lock so that parallel
trials do not download or convert twice. The converter writes into a temporary directory that is
renamed to ``prepared`` only after ``meta.json`` is written, so an interrupted preparation never
leaves a cache that looks complete. ``scream`` has no published checksum: its SHA-256 is trusted
on first use, recorded in ``meta.json`` and required of every later copy (a ``FileSpec`` passed
with ``files=`` overrides it).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from disent_core.data.files import FileRecord, FileSpec, fetch
from disent_core.data.paths import data_root
from disent_core.errors import DataError, UnknownNameError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
META_NAME = "meta.json"
_TMP_PREFIX = ".prepared-tmp-"
_OLD_PREFIX = ".prepared-old-"

Converter = Callable[[dict[str, Path], Path], dict[str, Any]]
"""``convert(raw_paths_by_filename, out_dir) -> content`` writes arrays into ``out_dir``."""

PathLike = str | os.PathLike


def _dir_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class DataSource:
    """Raw files of one dataset and the converter that prepares them into a cache."""

    name: str
    title: str
    files: tuple[FileSpec, ...]
    converter: str
    """``module:function`` implementing ``Converter``; imported only when preparing."""
    homepage: str = ""
    trust_on_first_use: bool = False

    # --- layout --------------------------------------------------------------------------
    def source_dir(self, root: PathLike | None = None) -> Path:
        """This source's directory under the data root.

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            ``<root>/<name>``.
        """
        return data_root(root) / self.name

    def raw_dir(self, root: PathLike | None = None) -> Path:
        """Where the raw downloads live (and where to place files by hand).

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            ``<root>/<name>/raw``.
        """
        return self.source_dir(root) / "raw"

    def cache_dir(self, root: PathLike | None = None) -> Path:
        """Where the converted cache lives once prepared.

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            ``<root>/<name>/prepared``.
        """
        return self.source_dir(root) / "prepared"

    # --- state ---------------------------------------------------------------------------
    def read_meta(self, root: PathLike | None = None) -> dict[str, Any] | None:
        """The cache's ``meta.json``, or None when there is none or it cannot be parsed.

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            The parsed ``meta.json``, or None.
        """
        path = self.cache_dir(root) / META_NAME
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def is_prepared(self, root: PathLike | None = None) -> bool:
        """True when the cache is complete: current schema and every output file at its size.

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            Whether the cache can be loaded as it is.
        """
        meta = self.read_meta(root)
        if meta is None or meta.get("schema_version") != SCHEMA_VERSION or meta.get("source") != self.name:
            return False
        cache = self.cache_dir(root)
        for filename, size in meta.get("outputs", {}).items():
            path = cache / filename
            if not path.is_file() or path.stat().st_size != size:
                return False
        return True

    def load_meta(self, root: PathLike | None = None) -> dict[str, Any]:
        """``meta.json`` of a prepared cache; raises ``DataError`` when it is not prepared.

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            The parsed ``meta.json`` (its ``content`` is what the converter returned).

        Raises:
            DataError: the cache is not prepared.
        """
        if not self.is_prepared(root):
            raise DataError(
                f"data source {self.name!r} is not prepared under {self.source_dir(root)}; "
                "call prepare(), or build the dataset with download=True"
            )
        return self.read_meta(root)  # type: ignore[return-value]

    # --- preparation ---------------------------------------------------------------------
    def _specs(self, root: PathLike | None, files: Sequence[FileSpec] | None) -> tuple[FileSpec, ...]:
        specs = tuple(files) if files is not None else self.files
        if not self.trust_on_first_use:
            return specs
        recorded = {f["filename"]: f["sha256"] for f in (self.read_meta(root) or {}).get("files", [])}
        return tuple(
            replace(s, sha256=recorded[s.filename])
            if s.filename in recorded and not (s.sha256 or s.md5 or s.accepted_hashes)
            else s
            for s in specs
        )

    def prepare(
        self,
        root: PathLike | None = None,
        *,
        download: bool = True,
        files: Sequence[FileSpec] | None = None,
        force: bool = False,
        timeout: float = 60.0,
    ) -> Path:
        """Download, verify and convert once; return the cache directory.

        ``files`` replaces the declared ``FileSpec`` list (other mirrors, a local ``file://``
        copy, other checksums). ``force`` rebuilds the cache even when it is complete; raw files
        are always verified, never re-downloaded when good.

        Args:
            root: the data root (default: ``data_root()``).
            download: whether missing raw files may be downloaded.
            files: specs replacing the declared ones.
            force: rebuild the cache even when it is complete.
            timeout: seconds per network operation of each download.

        Returns:
            The prepared cache directory, ``<root>/<name>/prepared``.

        Raises:
            ChecksumError: only bad copies of a raw file were found.
            DataNotFoundError: a raw file is missing and could not be downloaded.
            DataError: the converter rejected a raw file.
        """
        if not force and self.is_prepared(root):
            return self.cache_dir(root)
        source_dir = self.source_dir(root)
        source_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(source_dir / ".lock"):
            if not force and self.is_prepared(root):
                return self.cache_dir(root)
            self._remove_leftovers(source_dir)
            specs = self._specs(root, files)
            records = [fetch(spec, self.raw_dir(root), download=download, timeout=timeout) for spec in specs]
            self._convert(root, records)
        return self.cache_dir(root)

    @staticmethod
    def _remove_leftovers(source_dir: Path) -> None:
        """Delete temporary cache directories of interrupted runs (raw files are never touched)."""
        for path in source_dir.iterdir():
            if path.is_dir() and path.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
                log.info("removing leftover %s of an interrupted preparation", path)
                shutil.rmtree(path)

    def _convert(self, root: PathLike | None, records: list[FileRecord]) -> None:
        module, attr = self.converter.split(":")
        convert: Converter = getattr(importlib.import_module(module), attr)
        source_dir = self.source_dir(root)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=source_dir))
        old = None
        try:
            log.info("preparing %s into %s", self.name, self.cache_dir(root))
            content = convert({r.filename: r.path for r in records}, tmp)
            outputs = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
            meta = {
                "schema_version": SCHEMA_VERSION,
                "source": self.name,
                "title": self.title,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": [r.to_json() for r in records],
                "outputs": outputs,
                "content": content,
            }
            with open(tmp / META_NAME, "w") as f:
                json.dump(meta, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            cache = self.cache_dir(root)
            if cache.exists():
                old = source_dir / f"{_OLD_PREFIX}{os.getpid()}"
                os.replace(cache, old)
            os.replace(tmp, cache)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    # --- reporting -----------------------------------------------------------------------
    def describe(self, root: PathLike | None = None) -> dict[str, Any]:
        """Status of raw files and cache, without hashing anything (cheap).

        Args:
            root: the data root (default: ``data_root()``).

        Returns:
            A JSON-able dict: name, title, homepage, ``status`` (``"prepared"``, ``"downloaded"``,
            ``"partial"`` or ``"missing"``), directories, one entry per raw file and the cache's state.
        """
        raw = self.raw_dir(root)
        cache = self.cache_dir(root)
        prepared = self.is_prepared(root)
        entries = []
        for spec in self._specs(root, None):
            path = raw / spec.filename
            part = raw / f"{spec.filename}.part"
            rejected = sorted(p.name for p in raw.glob(f"{spec.filename}.bad-*")) if raw.exists() else []
            entries.append({
                **spec.to_json(),
                "path": str(path),
                "present": path.is_file(),
                "bytes_on_disk": path.stat().st_size if path.is_file() else None,
                "partial_bytes": part.stat().st_size if part.is_file() else None,
                "rejected_copies": rejected,
            })
        if prepared:
            status = "prepared"
        elif all(e["present"] for e in entries):
            status = "downloaded"
        elif any(e["present"] or e["partial_bytes"] for e in entries):
            status = "partial"
        else:
            status = "missing"
        return {
            "name": self.name,
            "title": self.title,
            "homepage": self.homepage,
            "status": status,
            "data_root": str(data_root(root)),
            "raw_dir": str(raw),
            "cache_dir": str(cache),
            "files": entries,
            "cache": {
                "path": str(cache),
                "prepared": prepared,
                "bytes_on_disk": _dir_bytes(cache),
                "meta": self.read_meta(root) if prepared else None,
            },
        }


# --- the registry ----------------------------------------------------------------------------
_DSPRITES_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
_NORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_NORB_FILES = (
    ("smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz", 131_896_188,
     "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873", "66054832f9accfe74a0f4c36a75bc0a2"),
    ("smallnorb-5x46789x9x18x6x2x96x96-training-cat.mat.gz", 348,
     "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa", "23c8b86101fbf0904a000b43d3ed2fd9"),
    ("smallnorb-5x46789x9x18x6x2x96x96-training-info.mat.gz", 71_052,
     "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32", "51dee1210a742582ff607dfd94e332e3"),
    ("smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat.gz", 130_799_817,
     "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474", "e4ad715691ed5a3a5f138751a4ceb071"),
    ("smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat.gz", 347,
     "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff", "5aa791cd7e6016cf957ce9bdb93b8603"),
    ("smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz", 10_428,
     "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2", "a9454f3864d7fd4bb3ea7fc3eb84924e"),
)

SOURCES: dict[str, DataSource] = {
    s.name: s
    for s in (
        DataSource(
            name="dsprites",
            title="dSprites (Matthey et al. 2017)",
            homepage="https://github.com/google-deepmind/dsprites-dataset",
            files=(
                FileSpec(
                    _DSPRITES_NPZ,
                    urls=(
                        f"https://github.com/deepmind/dsprites-dataset/raw/master/{_DSPRITES_NPZ}",
                        f"https://raw.githubusercontent.com/google-deepmind/dsprites-dataset/master/{_DSPRITES_NPZ}",
                        "https://github.com/google-deepmind/dsprites-dataset/raw/"
                        f"fa310c66517cfc1939d77fe17c725154efc97127/{_DSPRITES_NPZ}",
                    ),
                    md5="7da33b31b13a06f4b04a70402ce90c2e",
                ),
            ),
            converter="disent_core.data.dsprites:convert_dsprites",
        ),
        DataSource(
            name="shapes3d",
            title="3DShapes (Burgess & Kim 2018)",
            homepage="https://github.com/google-deepmind/3d-shapes",
            files=(
                FileSpec(
                    "3dshapes.h5",
                    urls=(
                        "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
                        "https://storage.cloud.google.com/3d-shapes/3dshapes.h5",
                    ),
                    size=267_573_662,
                    sha256="0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
                    md5="099a2078d58cec4daad0702c55d06868",
                ),
            ),
            converter="disent_core.data.shapes3d:convert_shapes3d",
        ),
        DataSource(
            name="smallnorb",
            title="SmallNORB (LeCun, Huang, Bottou 2004)",
            homepage="https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",
            files=tuple(
                FileSpec(name, urls=(_NORB_URL + name,), size=size, sha256=sha256, md5=md5)
                for name, size, sha256, md5 in _NORB_FILES
            ),
            converter="disent_core.data.smallnorb:convert_smallnorb",
        ),
        DataSource(
            name="scream",
            title="The Scream (Munch 1893), background of scream_dsprites",
            homepage="https://commons.wikimedia.org/wiki/File:The_Scream.jpg",
            files=(
                FileSpec(
                    "The_Scream.jpg",
                    urls=("https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg",),
                ),
            ),
            converter="disent_core.data.scream:convert_scream",
            trust_on_first_use=True,
        ),
    )
}


def source_names() -> list[str]:
    """Names of all downloadable sources."""
    return list(SOURCES)


def get_source(name: str) -> DataSource:
    """The source called ``name``; an unknown name raises ``UnknownNameError`` listing valid ones.

    Args:
        name: ``"dsprites"``, ``"shapes3d"``, ``"smallnorb"`` or ``"scream"``.

    Returns:
        The source.

    Raises:
        UnknownNameError: ``name`` is not a source.
    """
    if name not in SOURCES:
        raise UnknownNameError(f"unknown data source {name!r}; valid sources: {', '.join(source_names())}")
    return SOURCES[name]
