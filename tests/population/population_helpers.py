"""Small configs and comparisons shared by the population tests."""

from __future__ import annotations

from disent_core.methods.base import Method

SMALL_GRID = {"sizes": [3, 2, 4, 4, 4]}
SEEDS = (3, 5, 3, 7)
"""Member seeds: members 0 and 2 share a seed (and so a data stream); the others have their own."""


def config(method: dict, seed: int, steps: int = 50, **train: object) -> dict:
    """A tiny training config: 4 latents, base_channels 4, batch 8, no prefetching thread."""
    return {
        "dataset": {"name": "dsprites_procedural", "options": SMALL_GRID},
        "method": method,
        "model": {"latent_dim": 4, "base_channels": 4},
        "train": {"steps": steps, "batch_size": 8, "seed": seed, "report_every": 25, "prefetch": 0, **train},
    }


def members(methods: list[dict], steps: int = 50, **train: object) -> list[dict]:
    """One config per method, seeded with ``SEEDS`` in turn."""
    return [config(m, seed, steps, **train) for m, seed in zip(methods, SEEDS, strict=False)]


def assert_same_parameters(got: Method, want: Method, rtol: float = 1e-5) -> None:
    """Every parameter tensor of ``got`` is within ``rtol`` of ``want``'s in relative (Frobenius) norm.

    A norm, not each element: Adam moves an element whose gradient is near zero by up to its learning
    rate whichever way rounding tips it, in a single training as much as in a population.
    """
    a, b = got.state_dict(), want.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].shape == b[key].shape, key
        distance, norm = (a[key] - b[key]).norm().item(), b[key].norm().item()
        assert distance <= rtol * norm + 1e-12, f"{key}: relative distance {distance / max(norm, 1e-30):.2e}"


def assert_same_terms(got: dict[str, float], want: dict[str, float]) -> None:
    """The same reported terms, equal up to fp32 rounding of each value (relative, or absolute near 0)."""
    assert got.keys() == want.keys()
    for key in got:
        assert abs(got[key] - want[key]) <= 1e-4 * abs(want[key]) + 1e-6, (key, got[key], want[key])
