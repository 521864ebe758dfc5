"""What a metric declares (``MetricSpec``) and what the engine hands it (``EvalContext``).

The design follows dent's metric groups: each metric declares the shared i.i.d. point sets it
needs (``points``: role -> number of points); the engine draws and encodes the union once (per
role, the largest request; a metric asking for fewer points gets a prefix, itself an i.i.d.
sample) and then calls every metric's ``compute`` with the same context. Metrics with their own
sampling design (BetaVAE, FactorVAE, reconstruction) draw from their own named random stream
through ``encode_groups``, which renders and encodes in chunks without holding the observations.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import joblib
import numpy as np

from disent_core.errors import MetricError
from disent_core.metrics.protocol import Protocol
from disent_core.metrics.sampling import stream_rng, stream_seed

if TYPE_CHECKING:
    from disent_core.methods.base import Method

T = TypeVar("T")
R = TypeVar("R")

ROLES = ("train", "test")
"""Shared point sets: two independent i.i.d. draws, as dlib's train and test sets."""


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its result keys (without prefix), its needs and its computation."""

    name: str
    keys: tuple[str, ...]
    compute: Callable[[EvalContext], dict[str, float]]
    points: Callable[[Protocol], Mapping[str, int]] = field(default=lambda protocol: {})
    """The shared point sets it reads: role -> number of points."""
    uses_factors: bool = True
    accepts: Callable[[Any], bool] | None = None
    """Which representations it can score (None: any); others are skipped with a note."""
    requirement: str = ""
    """What ``accepts`` asks for, in words, for the note."""


@dataclass(frozen=True)
class Points:
    """Codes (N, D) float64 and their scored latent factors (N, K) int64."""

    codes: np.ndarray
    factors: np.ndarray


@dataclass
class EvalContext:
    """Everything one evaluation shares between metrics."""

    dataset: Any
    protocol: Protocol
    seed: int
    encode: Callable[[np.ndarray], np.ndarray]
    """Float32 observations (N, C, H, W) -> float64 codes (N, D), validated."""
    scored: np.ndarray
    """Latent factor columns that metrics score (one-value factors dropped under ``drop``)."""
    n_jobs: int = -1
    method: Method | None = None
    point_sets: dict[str, Points] = field(default_factory=dict)

    # --- factors -------------------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.scored)

    def sample_latent(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniform latent factor vectors, all latent columns (n, K_all)."""
        return np.asarray(self.dataset.sample_factors(n, rng), dtype=np.int64)

    # --- randomness ----------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        return stream_rng(self.seed, name)

    def estimator_seed(self, name: str) -> int:
        return stream_seed(self.seed, name)

    # --- observations and codes ----------------------------------------------------------------
    def points(self, role: str, n: int) -> Points:
        """The first ``n`` points of the shared ``role`` set."""
        if role not in self.point_sets or len(self.point_sets[role].codes) < n:
            raise RuntimeError(f"point set {role!r} of {n} points was not declared by the metric")
        full = self.point_sets[role]
        return Points(full.codes[:n], full.factors[:n])

    def observation_chunks(
        self, factors: np.ndarray, rng: np.random.Generator, per_chunk: int
    ) -> Iterator[np.ndarray]:
        """Observations of latent factors (N, K_all), ``per_chunk`` rows at a time.

        Nuisance factors are drawn from ``rng`` chunk by chunk, in order; unless rendering is cheap,
        one background thread renders the next chunk while the caller works on this one
        (``prefetched``).
        """
        def task(start: int) -> Callable[[], np.ndarray]:
            chunk = factors[start : start + per_chunk]
            return lambda: self.dataset.sample_observations_from_factors(chunk, rng)

        return prefetched(task(start) for start in range(0, len(factors), per_chunk))

    def encode_groups(
        self,
        factors: np.ndarray,
        rng: np.random.Generator,
        reduce: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Render and encode (G, M, K_all) latent factors in chunks; returns stacked ``reduce`` outputs.

        ``reduce`` maps the codes of whole groups (g, M, D) to one row per group (g, ...). A chunk
        holds ``max(1, chunk_size // M)`` whole groups.
        """
        groups, size, width = factors.shape
        if groups == 0:
            raise ValueError("no observations to encode")
        per_chunk = max(1, self.protocol.chunk_size // size) * size
        outputs = []
        for observations in self.observation_chunks(factors.reshape(-1, width), rng, per_chunk):
            codes = self.encode(observations)
            outputs.append(reduce(codes.reshape(-1, size, codes.shape[1])))
        return np.concatenate(outputs)

    def draw_points(self, role: str, n: int) -> Points:
        """The first ``n`` points of the i.i.d. stream ``points/<role>``: (codes, scored factors).

        Points come in whole chunks of ``chunk_size``, chunk c drawn from its own stream
        ``points/<role>/<c>``, so the first ``n`` points are the same whatever the total drawn:
        adding a metric that needs more points never changes another metric's sample.
        """
        chunk = self.protocol.chunk_size

        def task(index: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
            def render() -> tuple[np.ndarray, np.ndarray]:
                rng = self.rng(f"points/{role}/{index}")
                factors = self.sample_latent(chunk, rng)
                return factors, self.dataset.sample_observations_from_factors(factors, rng)

            return render

        codes, factors = [], []
        for chunk_factors, observations in prefetched(task(i) for i in range(-(-n // chunk))):
            codes.append(self.encode(observations))
            factors.append(chunk_factors)
        return Points(np.concatenate(codes)[:n], np.concatenate(factors)[:n, self.scored])

    # --- parallel fits -------------------------------------------------------------------------
    def parallel(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[function(item) for item in items]`` across ``n_jobs`` threads (joblib), in order.

        Threads, not processes: the estimators' fitting loops (tree builders, liblinear) release
        the GIL, and threads need no process start-up or copies of the data (which also matters
        inside Ray workers).
        """
        items = list(items)
        if self.n_jobs == 1 or len(items) <= 1:
            return [function(item) for item in items]
        return joblib.Parallel(n_jobs=self.n_jobs, prefer="threads")(
            joblib.delayed(function)(item) for item in items
        )


PROBE_TASKS = 3
"""``prefetched`` runs this many tasks inline and times them before it decides."""


def prefetched(tasks: Iterable[Callable[[], T]]) -> Iterator[T]:
    """Results of ``tasks`` in order; tasks run one at a time, in order, so shared RNGs stay
    deterministic.

    The first ``PROBE_TASKS`` run inline. When the fastest of them took at least the interpreter's
    thread switch interval (5 ms), each following task runs in one background thread while the
    caller consumes the previous result (rendering overlaps encoding); cheaper tasks go on running
    inline, where handing the GIL back and forth between two threads would cost more than the
    overlap saves (and a task timed in the background would include those waits, hence one
    decision from inline timings, the fastest so that one slow start does not decide).
    """
    tasks = iter(tasks)
    fastest = float("inf")
    for _, task in zip(range(PROBE_TASKS), tasks, strict=False):
        start = time.perf_counter()
        result = task()
        fastest = min(fastest, time.perf_counter() - start)
        yield result
    if fastest < sys.getswitchinterval():
        for task in tasks:
            yield task()
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        following = next(tasks, None)
        pending = pool.submit(following) if following is not None else None
        while pending is not None:
            result = pending.result()
            following = next(tasks, None)
            pending = pool.submit(following) if following is not None else None
            yield result


def require(condition: bool, message: str) -> None:
    """Raise ``MetricError(message)`` unless ``condition``."""
    if not condition:
        raise MetricError(message)


def check_classes(labels: np.ndarray, ctx: EvalContext, metric: str, what: str) -> None:
    """Every scored factor must take at least two values in ``labels`` (N, K) to fit a classifier."""
    for k in range(labels.shape[1]):
        require(
            len(np.unique(labels[:, k])) >= 2,
            f"{metric}: factor {factor_name(ctx, k)!r} takes a single value in the {len(labels)} "
            f"{what}; too few samples for this protocol, increase its size",
        )


def factor_name(ctx: EvalContext, k: int) -> str:
    """Name of scored factor ``k``."""
    names = list(getattr(ctx.dataset, "factor_names", []))
    column = int(ctx.scored[k])
    return names[column] if column < len(names) else f"factor {column}"
