"""Helpers of the metric tests: dlib's IdentityObservationsData rebuilt on disent_core.data.

Ten factors with ten values each; an observation is a (1, 1, 10) "image" holding the factor
vector (as uint8, so x * 255 recovers it), and ``identity`` maps it back to the factor values.
"""

from __future__ import annotations

import numpy as np

from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.factor_space import FactorSpace
from disent_core.data.stores import ProceduralStore
from disent_core.metrics import get_protocol
from disent_core.metrics.protocol import Protocol


def identity_dataset(
    num_factors: int = 10, num_values: int = 10, sizes: tuple[int, ...] | None = None
) -> GroundTruthDataset:
    """Observations that are their own factors (``sizes`` overrides the square grid)."""
    sizes = sizes or (num_values,) * num_factors
    space = FactorSpace(tuple(f"f{k}" for k in range(len(sizes))), sizes)

    def render(full: np.ndarray) -> np.ndarray:
        return full.astype(np.uint8)[:, None, None, :]

    store = ProceduralStore(render, space.index_to_factors, space.size, (1, 1, len(sizes)))
    return GroundTruthDataset("identity", space, store)


def identity(x: np.ndarray) -> np.ndarray:
    """Observations of ``identity_dataset`` -> their factor values (N, K) as floats."""
    return np.rint(x.reshape(len(x), -1) * 255.0)


def small(name: str = "dlib2019", **extra: int) -> Protocol:
    """A protocol with test-sized samples."""
    sizes = dict(num_train=2000, num_test=1000, num_eval=500, num_variance_estimate=2000, num_points=200)
    sizes.update(extra)
    return get_protocol(name).with_sizes(**sizes)
