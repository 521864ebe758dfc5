"""What a metric declares (``MetricSpec``) and what the engine hands it (``EvalContext``).

The design follows dent's metric groups: each metric declares the shared i.i.d. point sets it
needs (``points``: role -> number of points); the engine draws and encodes the union once (per
role, the largest request; a metric asking for fewer points gets a prefix, itself an i.i.d.
sample) and then calls every metric's ``compute`` with the same context. Metrics with their own
sampling design (BetaVAE, FactorVAE, reconstruction) draw from their own named random stream
through ``encode_groups``, which renders and encodes in chunks without holding the observations
and, where an observation is a function of its grid point and its code a function of the
observation (``EvalContext.reuses_grid_codes``: a deterministic dataset and a deterministic
representation), encodes each distinct grid point once (``codes_of_grid_points``). A
representation that is not deterministic (the sampled kind) is called on every observation drawn,
with a noise seed spawned from the random stream that drew it (``encode_drawn``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import joblib
import numpy as np

from disent_core.errors import MetricError
from disent_core.metrics.protocol import Protocol
from disent_core.metrics.sampling import spawn_seed, stream_rng, stream_seed

if TYPE_CHECKING:
    from disent_core.latents import Autoencoder

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
    encode: Callable[..., np.ndarray]
    """Float32 observations (N, C, H, W) -> float64 codes (N, D), validated; one that is not
    ``deterministic`` also takes a noise seed (``RepresentationFunction``)."""
    scored: np.ndarray
    """Latent factor columns that metrics score (one-value factors dropped under ``drop``)."""
    n_jobs: int = -1
    autoencoder: Autoencoder | None = None
    """The representation when it is an ``Autoencoder`` (the reconstruction metric reads it)."""
    batch_size: int | None = None
    """Observations per call of the representation (None: a whole chunk)."""
    deterministic: bool = True
    """``encode`` gives an observation the same code on every call."""
    point_sets: dict[str, Points] = field(default_factory=dict)
    grid_codes: GridCodes | None = None
    """Codes of the grid points encoded so far by ``codes_of_grid_points``."""

    # --- factors -------------------------------------------------------------------------------
    @property
    def num_factors(self) -> int:
        return len(self.scored)

    def sample_latent(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` latent factor vectors from the dataset's ``sample_factors``, all latent columns (n, K_all).

        Args:
            n: how many vectors.
            rng: the stream to draw from.

        Returns:
            (n, K_all) int64 latent factor indices (uniform unless the dataset correlates them).
        """
        return np.asarray(self.dataset.sample_factors(n, rng), dtype=np.int64)

    # --- randomness ----------------------------------------------------------------------------
    def rng(self, name: str) -> np.random.Generator:
        """The random stream ``name`` of this evaluation's seed (``stream_rng``).

        Args:
            name: the stream's name (``"beta_vae"``, ``"points/train/0"`` ...).

        Returns:
            A fresh Generator, the same for the same seed and name.
        """
        return stream_rng(self.seed, name)

    def estimator_seed(self, name: str) -> int:
        """An estimator's ``random_state`` derived from this evaluation's seed (``stream_seed``).

        Args:
            name: the stream's name (``"beta_vae/estimator"`` ...).

        Returns:
            An integer in [0, 2**31).
        """
        return stream_seed(self.seed, name)

    # --- observations and codes ----------------------------------------------------------------
    @property
    def reuses_grid_codes(self) -> bool:
        """Whether the code of an observation is a function of its grid point, so that codes of
        grid points may be reused: the dataset's observations and the representation are both
        deterministic."""
        return self.deterministic and bool(getattr(self.dataset, "observations_are_deterministic", False))

    def encode_drawn(self, observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Codes of ``observations`` drawn from the stream ``rng``.

        A representation that is not deterministic gets the seed of the next child of ``rng``
        (``spawn_seed``), which draws nothing from ``rng``.

        Args:
            observations: float32 (N, C, H, W) in [0, 1].
            rng: the random stream the observations were drawn from.

        Returns:
            Float64 codes (N, D).
        """
        if self.deterministic:
            return self.encode(observations)
        return self.encode(observations, spawn_seed(rng))

    def points(self, role: str, n: int) -> Points:
        """The first ``n`` points of the shared ``role`` set.

        Args:
            role: ``"train"`` or ``"test"``.
            n: how many points; at most what the metric declared in ``MetricSpec.points``.

        Returns:
            Codes (n, D) float64 and scored factors (n, K) int64.

        Raises:
            RuntimeError: the set was not drawn with at least ``n`` points.
        """
        if role not in self.point_sets or len(self.point_sets[role].codes) < n:
            raise RuntimeError(f"point set {role!r} of {n} points was not declared by the metric")
        full = self.point_sets[role]
        return Points(full.codes[:n], full.factors[:n])

    def observation_chunks(
        self, factor_chunks: Iterable[np.ndarray], rng: np.random.Generator
    ) -> Iterator[np.ndarray]:
        """Observations of each chunk of latent factors (n, K_all) in ``factor_chunks``.

        Nuisance factors are drawn from ``rng`` chunk by chunk, in order; unless rendering is cheap,
        one background thread renders the next chunk while the caller works on this one
        (``prefetched``).

        Args:
            factor_chunks: chunks of latent factor indices, each (n, K_all).
            rng: the stream nuisance factors and transforms draw from.

        Returns:
            An iterator of float32 observations (n, C, H, W) in [0, 1], one per chunk.
        """
        def task(chunk: np.ndarray) -> Callable[[], np.ndarray]:
            return lambda: self.dataset.sample_observations_from_factors(chunk, rng)

        return prefetched(task(chunk) for chunk in factor_chunks)

    def encode_groups(
        self,
        parts: Sequence[np.ndarray],
        rng: np.random.Generator,
        reduce: Callable[[np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """Render and encode groups of latent factors; returns stacked ``reduce`` outputs.

        Group g is the concatenation of ``part[g]`` over ``parts`` (each (G, M_i, K_all)), members
        in part order; the parts are joined one chunk of ``max(1, chunk_size // M)`` whole groups at
        a time, so no array of all the groups' members is built. ``reduce`` maps the codes of whole
        groups (g, M, D) to one row per group (g, ...). Nuisance factors are drawn from ``rng``
        chunk by chunk, in order. When codes are a function of the grid point
        (``reuses_grid_codes``), they come from ``codes_of_grid_points``; otherwise every member
        is rendered and encoded.

        Args:
            parts: latent factor indices, each (G, M_i, K_all), M = sum_i M_i members per group.
            rng: the stream nuisance factors (and sampled-representation noise seeds) come from.
            reduce: float64 codes (g, M, D) -> one row per group (g, ...).

        Returns:
            (G, ...) the ``reduce`` outputs of all groups, in order.

        Raises:
            ValueError: no members, or parts with different numbers of groups.
        """
        groups = parts[0].shape[0]
        size = sum(part.shape[1] for part in parts)
        if groups == 0 or size == 0:
            raise ValueError("no observations to encode")
        if any(part.shape[0] != groups for part in parts):
            raise ValueError(f"parts disagree on the number of groups: {[p.shape for p in parts]}")
        per_chunk = max(1, self.protocol.chunk_size // size)

        def factor_chunks() -> Iterator[np.ndarray]:
            for start in range(0, groups, per_chunk):
                members = [part[start : start + per_chunk] for part in parts]
                yield np.concatenate(members, axis=1).reshape(-1, members[0].shape[2])

        if self.reuses_grid_codes:
            index = np.concatenate([self.dataset.grid_index(chunk, rng) for chunk in factor_chunks()])
            codes = self.codes_of_grid_points(index, rng, size)
        else:
            chunks = self.observation_chunks(factor_chunks(), rng)
            codes = (self.encode_drawn(chunk, rng) for chunk in chunks)
        return np.concatenate([reduce(c.reshape(-1, size, c.shape[1])) for c in codes])

    def codes_of_grid_points(
        self, index: np.ndarray, rng: np.random.Generator, multiple: int = 1
    ) -> Iterator[np.ndarray]:
        """Codes of the grid points ``index`` (N,) in order, in blocks of a ``multiple`` of rows.

        The first ``PROBE_TASKS`` chunks are rendered and encoded in turn, and timed. After them,
        each grid point is rendered and encoded once per evaluation, in sorted chunks of
        ``chunk_size``, and the codes are gathered from a table over the grid (``GridCodes``)
        that later calls, and other metrics, reuse. dlib2019's BetaVAE score draws 1.92 million
        observations of dSprites' 737,280 grid points, its training pairs 1.28 million with about
        607,000 distinct points; smaller grids repeat far more. The codes are those of the same
        observations (for a deterministic representation, up to floating-point effects of batch
        composition). Every point goes on being rendered and encoded in turn when the table would
        exceed ``GRID_CODES_BYTES``, or when the points already encoded or repeated would cost
        less to render and encode (at the fastest probed chunk's rate) than gathering costs
        (``GATHER_SECONDS_PER_ROW``): a representation that looks its codes up is as cheap as a
        gather. Only for codes that are a function of the grid point (``reuses_grid_codes``).

        Args:
            index: (N,) int64 flat grid indices, repeats allowed.
            rng: passed to the dataset's ``observations_at`` (a deterministic dataset draws nothing).
            multiple: every block but the last has a multiple of this many rows (a group's size).

        Returns:
            An iterator of float64 code blocks (rows, D) whose concatenation is (N, D).

        Raises:
            RuntimeError: codes are not a function of the grid point (``reuses_grid_codes`` is False).
        """
        if not self.reuses_grid_codes:
            raise RuntimeError(
                "codes_of_grid_points needs a deterministic dataset and a deterministic representation"
            )
        rows = max(1, self.protocol.chunk_size // multiple) * multiple
        draws = self.encoded(index, rng, rows)
        probed: list[np.ndarray] = []
        seconds_per_row = float("inf")
        for _ in range(PROBE_TASKS):
            start = time.perf_counter()
            codes = next(draws, None)
            if codes is None:
                return
            seconds_per_row = min(seconds_per_row, (time.perf_counter() - start) / len(codes))
            probed.append(codes)
            yield codes
        done = sum(len(codes) for codes in probed)
        rest = index[done:]
        grid_size = len(self.dataset)
        if grid_size * probed[0].itemsize * probed[0].shape[1] > GRID_CODES_BYTES:
            yield from draws
            return
        table = self.grid_codes
        wanted = np.zeros(grid_size, dtype=bool)
        wanted[rest] = True
        wanted[index[:done]] = False
        missing = np.flatnonzero(wanted if table is None else wanted & ~table.known)
        if seconds_per_row * (len(rest) - len(missing)) < GATHER_SECONDS_PER_ROW * len(rest):
            yield from draws
            return
        draws.close()
        if table is None:
            table = self.grid_codes = GridCodes.empty(grid_size, probed[0].shape[1])
        table.add(index[:done], np.concatenate(probed))
        done = 0
        for codes in self.encoded(missing, rng, self.protocol.chunk_size):
            table.add(missing[done : done + len(codes)], codes)
            done += len(codes)
        block = max(1, GATHER_BYTES // (multiple * table.codes.itemsize * table.codes.shape[1]))
        block *= multiple
        for start in range(0, len(rest), block):
            yield np.take(table.codes, rest[start : start + block], axis=0)

    def encoded(self, index: np.ndarray, rng: np.random.Generator, rows: int) -> Iterator[np.ndarray]:
        """Codes of the observations of grid points ``index``, ``rows`` at a time (``prefetched``).

        Args:
            index: (N,) int64 flat grid indices.
            rng: passed to the dataset's ``observations_at``.
            rows: grid points rendered and encoded per block.

        Returns:
            An iterator of float64 code blocks (<= rows, D), in order.
        """
        def task(start: int) -> Callable[[], np.ndarray]:
            return lambda: self.dataset.observations_at(index[start : start + rows], rng)

        renders = prefetched(task(start) for start in range(0, len(index), rows))
        try:
            for observations in renders:
                yield self.encode(observations)
        finally:
            renders.close()

    def draw_points(self, role: str, n: int) -> Points:
        """The first ``n`` points of the i.i.d. stream ``points/<role>``: (codes, scored factors).

        Points come in whole chunks of ``chunk_size``, chunk c drawn from its own stream
        ``points/<role>/<c>``, so the first ``n`` points are the same whatever the total drawn:
        adding a metric that needs more points never changes another metric's sample.

        Args:
            role: ``"train"`` or ``"test"``.
            n: how many points.

        Returns:
            Codes (n, D) float64 and scored factors (n, K) int64.
        """
        chunk = self.protocol.chunk_size

        def task(index: int) -> Callable[[], tuple[np.ndarray, np.ndarray, np.random.Generator]]:
            def render() -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
                rng = self.rng(f"points/{role}/{index}")
                factors = self.sample_latent(chunk, rng)
                return factors, self.dataset.sample_observations_from_factors(factors, rng), rng

            return render

        codes, factors = [], []
        for chunk_factors, observations, rng in prefetched(task(i) for i in range(-(-n // chunk))):
            codes.append(self.encode_drawn(observations, rng))
            factors.append(chunk_factors)
        return Points(np.concatenate(codes)[:n], np.concatenate(factors)[:n, self.scored])

    # --- parallel fits -------------------------------------------------------------------------
    def parallel(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[function(item) for item in items]`` across ``n_jobs`` threads (joblib), in order.

        Threads, not processes: the estimators' fitting loops (tree builders, liblinear) release
        the GIL, and threads need no process start-up or copies of the data (which also matters
        inside Ray workers).

        Args:
            function: applied to every item.
            items: the inputs.

        Returns:
            The results, in the order of ``items``.
        """
        items = list(items)
        if self.n_jobs == 1 or len(items) <= 1:
            return [function(item) for item in items]
        return joblib.Parallel(n_jobs=self.n_jobs, prefer="threads")(
            joblib.delayed(function)(item) for item in items
        )


GRID_CODES_BYTES = 1 << 30
"""Largest table of codes over a dataset's grid that ``codes_of_grid_points`` builds (float64:
dSprites' 737,280 points with up to 182 dimensions)."""

GATHER_BYTES = 8 << 20
"""About the size of each block of gathered codes ``codes_of_grid_points`` yields."""

GATHER_SECONDS_PER_ROW = 1e-7
"""What gathering one row of codes from the grid table and reducing it costs, about (2 cores:
1.92 million 10-dim rows in 0.11 s); rendering and encoding a 64x64 image costs 100 to 1000 times
more."""


@dataclass
class GridCodes:
    """Codes (grid size, D) of a dataset's grid points, valid where ``known``."""

    codes: np.ndarray
    known: np.ndarray

    @classmethod
    def empty(cls, grid_size: int, dim: int) -> GridCodes:
        """A table of ``grid_size`` rows of uninitialised codes, none known.

        Args:
            grid_size: the number of grid points.
            dim: the code dimension D.

        Returns:
            A ``GridCodes`` with float64 codes (grid_size, D) and ``known`` all False.
        """
        return cls(np.empty((grid_size, dim)), np.zeros(grid_size, dtype=bool))

    def add(self, index: np.ndarray, codes: np.ndarray) -> None:
        """Record the codes (N, D) of grid points ``index`` (N,).

        Args:
            index: (N,) int64 flat grid indices.
            codes: float64 codes (N, D).
        """
        self.codes[index] = codes
        self.known[index] = True


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

    Args:
        tasks: callables without arguments, consumed lazily.

    Returns:
        An iterator of their results, in order.
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
    """Raise ``MetricError(message)`` unless ``condition``.

    Args:
        condition: what must hold.
        message: what is wrong and how to fix it.

    Raises:
        MetricError: ``condition`` is false.
    """
    if not condition:
        raise MetricError(message)


def check_classes(labels: np.ndarray, ctx: EvalContext, metric: str, what: str) -> None:
    """Every scored factor must take at least two values in ``labels`` (N, K) to fit a classifier.

    Args:
        labels: (N, K) integer scored factors.
        ctx: the evaluation (for factor names).
        metric: the metric's name, for the message.
        what: what the N rows are, for the message (``"training points"``).

    Raises:
        MetricError: a factor takes a single value.
    """
    for k in range(labels.shape[1]):
        require(
            len(np.unique(labels[:, k])) >= 2,
            f"{metric}: factor {factor_name(ctx, k)!r} takes a single value in the {len(labels)} "
            f"{what}; too few samples for this protocol, increase its size",
        )


def factor_name(ctx: EvalContext, k: int) -> str:
    """Name of scored factor ``k``.

    Args:
        ctx: the evaluation.
        k: index among the scored factors.

    Returns:
        The dataset's name of that factor, or ``"factor <column>"`` when it has none.
    """
    names = list(getattr(ctx.dataset, "factor_names", []))
    column = int(ctx.scored[k])
    return names[column] if column < len(names) else f"factor {column}"
