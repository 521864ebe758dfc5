"""Shared fixtures of the method tests: a tiny context and a fixed batch of binary images."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from pydantic import TypeAdapter

from disent_core.methods.base import Method, MethodContext
from disent_core.methods.registry import AnyMethodConfig, build_method

LATENT_DIM = 5
BATCH = 8
DATASET_SIZE = 1000


@pytest.fixture(autouse=True)
def _single_threaded(one_thread: None) -> None:
    """The method tests run tiny models on one thread (``one_thread``)."""


def make_context() -> MethodContext:
    return MethodContext(
        observation_shape=(1, 64, 64),
        latent_dim=LATENT_DIM,
        recon="bernoulli",
        dataset_size=DATASET_SIZE,
        generator=torch.Generator().manual_seed(0),
    )


@pytest.fixture
def context() -> MethodContext:
    return make_context()


@pytest.fixture
def build() -> Callable[[dict], Method]:
    """Build a method from a config dict, validated by the registry's union."""
    adapter = TypeAdapter(AnyMethodConfig)

    def _build(config: dict) -> Method:
        torch.manual_seed(0)  # weight initialisation only
        return build_method(adapter.validate_python(config), make_context())

    return _build


@pytest.fixture
def batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(BATCH, 1, 64, 64, generator=g) < 0.2).float()
