"""Where datasets are downloaded and cached: ``$DISENT_DATA`` or ``~/.cache/disent_studies/data``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "DISENT_DATA"


def data_root(override: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit override, else ``$DISENT_DATA``, else the user cache dir.

    Args:
        override: an explicit data root (``~`` expanded).

    Returns:
        An absolute path (``~/.cache/disent_studies/data`` by default); not created here.
    """
    if override is not None:
        return Path(override).expanduser().resolve()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path.home() / ".cache" / "disent_studies" / "data"
