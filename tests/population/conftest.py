"""The population tests run tiny models: one intra-op thread is fastest on a busy machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_threaded(one_thread: None) -> None:
    """The population tests run tiny models on one thread (``one_thread``)."""
