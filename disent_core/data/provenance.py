"""Where a dataset's observations came from, carried by every dataset and recorded with every result.

A score is comparable with the literature only when it was computed on the real data: the files the
papers used, identified by their SHA-256, and for ``scream_dsprites`` the painting itself. The
procedural stand-ins (``dsprites_procedural``, ``source: procedural``, the procedural Scream
texture) are useful for development and tests, and their numbers must say so. ``DatasetProvenance``
is that statement, as one line (``label``) for tables and tags and as a mapping for JSON files.

``require_real_data`` is the one place that refuses a non-real dataset where a comparable protocol
(``Protocol.comparable``, e.g. ``dlib2019``) is asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from disent_core.data.registry import DATASETS, get_entry
from disent_core.data.sources import get_source
from disent_core.errors import ConfigError

PROCEDURAL = "procedural"
_TEXTURE = "; texture: "


@dataclass(frozen=True)
class DatasetProvenance:
    """The origin of a dataset's observations.

    ``kind``: "real" (prepared from downloaded source files) or "procedural" (rendered offline).
    ``source``: the data source name of real data (``dsprites``, ``shapes3d``, ``smallnorb``).
    ``files``: ``(filename, sha256)`` of the source files the prepared cache was built from.
    ``texture``: for backgrounds drawn from an image (``scream_dsprites``): ``"painting sha256:<hex>"``,
    ``"image sha256:<hex>"`` for an array passed by the caller, or ``"procedural"``; None otherwise.
    """

    kind: Literal["real", "procedural"] = PROCEDURAL
    source: str | None = None
    files: tuple[tuple[str, str], ...] = ()
    texture: str | None = None

    @classmethod
    def of_source(cls, name: str, data_root: str | os.PathLike | None = None) -> DatasetProvenance:
        """The provenance of a prepared real source: its recorded file hashes.

        Args:
            name: a data source name (see ``disent_core.data.sources``).
            data_root: the data root it was prepared under (None: the default root).

        Returns:
            A real provenance listing every source file with its SHA-256.
        """
        meta = get_source(name).load_meta(data_root)
        files = tuple((f["filename"], f["sha256"]) for f in meta.get("files", []))
        return cls(kind="real", source=name, files=files)

    @property
    def comparable(self) -> bool:
        """True when the observations are the real data (and the real painting, where one is used)."""
        return _comparable(self.kind, self.texture)

    def label(self) -> str:
        """One line: ``procedural``, or ``real <source>: <file> sha256:<hex>, ...``, plus the texture."""
        if self.kind == PROCEDURAL:
            text = PROCEDURAL
        else:
            files = ", ".join(f"{filename} sha256:{digest}" for filename, digest in self.files)
            text = f"real {self.source}: {files}" if files else f"real {self.source}"
        return f"{text}{_TEXTURE}{self.texture}" if self.texture else text

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (the label included)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "files": [{"filename": f, "sha256": h} for f, h in self.files],
            "texture": self.texture,
            "comparable": self.comparable,
            "label": self.label(),
        }


def label_is_comparable(label: str) -> bool:
    """``comparable`` of the provenance that ``DatasetProvenance.label`` wrote as ``label`` (results
    tables and MLflow tags keep the label only).

    Args:
        label: a provenance label.

    Returns:
        True for real data (and the real painting, where one is used).
    """
    text, _, texture = label.partition(_TEXTURE)
    return _comparable("real" if text.startswith("real ") else PROCEDURAL, texture or None)


def _comparable(kind: str, texture: str | None) -> bool:
    return kind == "real" and (texture is None or texture.startswith("painting "))


def declared_provenance(dataset_name: str, options: dict[str, Any]) -> DatasetProvenance | None:
    """The provenance a dataset config implies before anything is loaded.

    Args:
        dataset_name: a registered dataset name (or alias).
        options: the dataset's options.

    Returns:
        A procedural provenance (or one with a procedural texture) when the config alone says so;
        None when it asks for real data, whose files are known only once loaded.
    """
    entry = get_entry(dataset_name)
    procedural = entry.kind == "procedural" or options.get("source") == PROCEDURAL
    texture = None
    if entry.name == "scream_dsprites" and "image" in options:
        texture = "image"
    elif entry.name == "scream_dsprites" and options.get("texture") == PROCEDURAL:
        texture = PROCEDURAL
    if texture is not None:
        kind = PROCEDURAL if procedural else "real"
        return DatasetProvenance(kind=kind, source=entry.source, texture=texture)
    return DatasetProvenance() if procedural else None


def require_real_data(dataset_name: str, provenance: DatasetProvenance, protocol: str) -> None:
    """Refuse a procedural stand-in (or fallback texture) under a protocol comparable with papers.

    Args:
        dataset_name: the registered dataset name, for the message.
        provenance: the dataset's provenance.
        protocol: the name of the comparable protocol asked for.

    Raises:
        ConfigError: naming what is procedural and how to get the real data or pick another protocol.
    """
    if provenance.comparable:
        return
    entry = DATASETS.get(dataset_name)
    if provenance.kind == PROCEDURAL and (entry is None or entry.source is None):
        what = f"{dataset_name} is procedural and has no real counterpart"
        get = "train on a real dataset (dsprites_full, shapes3d, smallnorb, ...)"
    elif provenance.kind == PROCEDURAL:
        what = f"{dataset_name} is the procedural stand-in (dataset option source: procedural)"
        get = (f"drop source: procedural and prepare the real data once with "
               f"`disent-study datasets prepare {dataset_name}`")
    else:
        painting = get_source("scream")
        what = (f"{dataset_name} draws its background from a {provenance.texture} texture, not The Scream")
        get = (f"set the dataset option texture: painting, which downloads {painting.files[0].urls[0]} "
               f"(offline: place it as {painting.raw_dir() / painting.files[0].filename})")
    raise ConfigError(
        f"the {protocol} protocol compares scores with published numbers, but {what}. To compare, {get}; "
        "to use this data anyway, choose a protocol that is not comparable (fast: evaluation.protocol "
        "in a study spec, --protocol for disent-study evaluate)"
    )
