"""The dataset registry: names -> entries whose factories are imported lazily, so listing stays cheap.

Adding a dataset is one entry here plus its module. Names follow disentanglement_lib
(``dsprites_full``, ``color_dsprites``, ``smallnorb``, ``shapes3d`` ...) so Locatello et al. study
configs map one to one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from disent_core.errors import ConfigError
from disent_core.registry import Registry, import_attr


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset: where its factory lives and what it needs."""

    name: str
    factory: str
    """``module:function`` returning a ``GroundTruthDataset``; called with the user's options."""
    summary: str
    kind: Literal["real", "procedural", "real-or-procedural"]
    source: str | None = None
    """Name of the downloadable source it is prepared from (see ``disent_core.data.sources``)."""

    def load_factory(self) -> Callable[..., Any]:
        """Import the factory (this is the only place a dataset's module is imported)."""
        return import_attr(self.factory)


_ENTRIES = [
    DatasetEntry(
        "dsprites_full", "disent_core.data.dsprites:dsprites_full",
        "dSprites, 737,280 binary 64x64 sprites; shape, scale, orientation, posX, posY",
        "real-or-procedural", "dsprites",
    ),
    DatasetEntry(
        "dsprites_noshape", "disent_core.data.dsprites:dsprites_noshape",
        "dSprites with shape as a nuisance factor (dlib's dsprites_noshape)",
        "real-or-procedural", "dsprites",
    ),
    DatasetEntry(
        "color_dsprites", "disent_core.data.variants:color_dsprites",
        "dSprites, sprite tinted by a random colour U(0.5, 1)^3 per image",
        "real-or-procedural", "dsprites",
    ),
    DatasetEntry(
        "noisy_dsprites", "disent_core.data.variants:noisy_dsprites",
        "dSprites on a uniform-noise background",
        "real-or-procedural", "dsprites",
    ),
    DatasetEntry(
        "scream_dsprites", "disent_core.data.variants:scream_dsprites",
        "dSprites on a crop of The Scream, sprite pixels inverted (procedural texture offline)",
        "real-or-procedural", "dsprites",
    ),
    DatasetEntry(
        "dsprites_procedural", "disent_core.data.dsprites_render:dsprites_procedural",
        "offline dSprites renderer with the exact factor grid and geometry (reduced grids allowed)",
        "procedural",
    ),
    DatasetEntry(
        "dsprites_correlated", "disent_core.data.correlated:dsprites_correlated",
        "DEFT's correlated triangles: orientation follows position (+ N(0, 45 deg)); offline",
        "procedural",
    ),
    DatasetEntry(
        "shapes3d", "disent_core.data.shapes3d:shapes3d",
        "3DShapes, 480,000 RGB 64x64 scenes; floor/wall/object hue, scale, shape, orientation",
        "real", "shapes3d",
    ),
    DatasetEntry(
        "shapes3d_procedural", "disent_core.data.shapes3d_render:shapes3d_procedural",
        "offline 3DShapes stand-in with the same six factor cardinalities",
        "procedural",
    ),
    DatasetEntry(
        "smallnorb", "disent_core.data.smallnorb:smallnorb",
        "SmallNORB, 48,600 greyscale toys at 64x64; category, elevation, azimuth, lighting",
        "real", "smallnorb",
    ),
]
DATASETS: Registry[DatasetEntry] = Registry(
    "dataset",
    ((e.name, e) for e in _ENTRIES),
    aliases={"dsprites": "dsprites_full"},
    sort_valid_names=True,
)
"""Every dataset by name (``"dsprites"`` is an alias of ``dsprites_full``); no dataset module is
imported until ``get_dataset`` builds one."""


def dataset_names() -> list[str]:
    """All registered dataset names (aliases excluded)."""
    return DATASETS.names()


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of ``name``, or an error listing the closest valid names.

    Args:
        name: a dataset name or alias (``"dsprites"``).

    Returns:
        The entry (factory path, summary, kind, source).

    Raises:
        UnknownNameError: ``name`` is not registered.
    """
    return DATASETS[name]


def get_dataset(name: str, **options: Any):
    """Build the registered dataset ``name`` with the given options.

    Args:
        name: a dataset name or alias.
        **options: keyword options of the dataset's factory (``source``, ``data_root``, ``sizes`` ...).

    Returns:
        The ``GroundTruthDataset``.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: an option the factory does not take (or one it rejects).
        DataError: real data is missing, corrupt or cannot be downloaded.
    """
    entry = get_entry(name)
    factory = entry.load_factory()
    try:
        return factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        accepted = [p for p in inspect.signature(factory).parameters if p not in ("kw", "kwargs")]
        raise ConfigError(
            f"dataset {entry.name!r} has no option {str(exc).split('argument ')[-1]}; "
            f"its options are: {', '.join(accepted)}"
        ) from None
