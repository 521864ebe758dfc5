"""Random streams, the histogram discretiser and discrete mutual information, vectorised.

- Streams: every random draw of an evaluation comes from a named stream derived from the one
  evaluation seed, ``Generator(PCG64(SeedSequence(seed, spawn_key=(crc32(name),))))``, so adding
  or removing a metric never changes another metric's numbers. A stream's children
  (``spawn_seed``, numpy's ``SeedSequence.spawn``) seed the noise of a sampled representation
  without drawing from the stream.
- Discretiser: disentanglement_lib's ``histogram_discretizer``. Each dimension separately:
  ``np.histogram`` edges over that dimension's own min..max (a constant dimension gets the range
  value +- 0.5), then ``np.digitize`` against all edges but the last, giving bins 1..num_bins.
- Mutual information: the same estimator as ``sklearn.metrics.mutual_info_score`` (nats, on the
  empirical joint distribution of two label vectors), computed for every pair of columns at once
  from joint counts; tested to match scikit-learn to 1e-12.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream ``name`` of evaluation seed ``seed``.

    Args:
        seed: the evaluation seed, a non-negative integer.
        name: the stream's name.

    Returns:
        ``Generator(PCG64(SeedSequence(seed, spawn_key=(crc32(name),))))``, fresh on every call.

    Raises:
        ValueError: ``seed`` is not a non-negative integer.
    """
    return np.random.Generator(np.random.PCG64(_seed_sequence(seed, name)))


def stream_seed(seed: int, name: str) -> int:
    """An integer seed (0 <= s < 2**31) for an estimator's ``random_state``, from stream ``name``.

    Args:
        seed: the evaluation seed, a non-negative integer.
        name: the stream's name.

    Returns:
        An integer in [0, 2**31).

    Raises:
        ValueError: ``seed`` is not a non-negative integer.
    """
    return int(_seed_sequence(seed, name).generate_state(1, np.uint32)[0] >> 1)


def spawn_seed(rng: np.random.Generator) -> int:
    """The 64-bit seed of the next child of ``rng``'s ``SeedSequence``.

    Spawning draws nothing from ``rng`` (its numbers are the same with or without the call); the
    n-th call on a stream gives the seed of its n-th child, independent of the stream and of the
    other children.

    Args:
        rng: a Generator built from a ``SeedSequence`` (every stream of ``stream_rng`` is).

    Returns:
        An integer in [0, 2**64).
    """
    child = rng.bit_generator.seed_seq.spawn(1)[0]
    return int(child.generate_state(1, np.uint64)[0])


def _seed_sequence(seed: int, name: str) -> np.random.SeedSequence:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"the evaluation seed must be a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()),))


def histogram_discretize(values: np.ndarray, num_bins: int) -> np.ndarray:
    """dlib's histogram discretiser on columns: (N, D) floats -> (N, D) int64 bins in 1..num_bins.

    Args:
        values: (N, D) floats; each column is binned over its own min..max.
        num_bins: equal-width bins per column.

    Returns:
        (N, D) int64 bin labels in 1..num_bins.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.int64)
    for d in range(values.shape[1]):
        edges = np.histogram_bin_edges(values[:, d], num_bins)
        out[:, d] = np.digitize(values[:, d], edges[:-1])
    return out


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, labels -> 0..n_j-1 (order preserved); returns (dense (N, D), n_j (D,))."""
    labels = np.asarray(labels)
    dense = np.empty(labels.shape, dtype=np.int64)
    sizes = np.empty(labels.shape[1], dtype=np.int64)
    for j in range(labels.shape[1]):
        uniques, dense[:, j] = np.unique(labels[:, j], return_inverse=True)
        sizes[j] = len(uniques)
    return dense, sizes


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI (nats) between every column of ``a`` (N, Da) and of ``b`` (N, Db): (Da, Db).

    Same formula and rounding guard as ``sklearn.metrics.mutual_info_score``: a sum over the
    non-zero cells of the contingency table, elementwise terms below machine epsilon set to 0,
    the total clipped at 0; a column with a single label has MI 0 with everything.

    Args:
        a: (N, Da) discrete labels (any sortable values).
        b: (N, Db) discrete labels.

    Returns:
        (Da, Db) float64 MI in nats, >= 0 (all 0 when N = 0).
    """
    a_dense, a_sizes = _dense_labels(a)
    b_dense, b_sizes = _dense_labels(b)
    n = a_dense.shape[0]
    out = np.zeros((a_dense.shape[1], b_dense.shape[1]))
    if n == 0:
        return out
    # every label of every column of ``a`` gets one id in 0..A-1
    a_start = np.concatenate([[0], np.cumsum(a_sizes)[:-1]])
    a_ids = a_dense + a_start
    a_column = np.repeat(np.arange(len(a_sizes)), a_sizes)
    a_counts = np.bincount(a_ids.ravel(), minlength=int(a_sizes.sum()))
    log_n = np.log(n)
    eps = np.finfo(np.float64).eps
    for j in range(b_dense.shape[1]):
        nb = int(b_sizes[j])
        if nb == 1:
            continue
        joint = np.bincount((a_ids * nb + b_dense[:, j : j + 1]).ravel(), minlength=len(a_counts) * nb)
        cells = np.flatnonzero(joint)
        a_label, b_label = np.divmod(cells, nb)
        count = joint[cells]
        outer = a_counts[a_label].astype(np.int64) * np.bincount(b_dense[:, j], minlength=nb)[b_label]
        p = count / n
        terms = p * (np.log(count) - log_n) + p * (-np.log(outer) + log_n + log_n)
        terms[np.abs(terms) < eps] = 0.0
        mi = np.bincount(a_column[a_label], weights=terms, minlength=len(a_sizes))
        mi[a_sizes == 1] = 0.0
        out[:, j] = np.clip(mi, 0.0, None)
    return out


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy (nats) of every column of ``labels`` (N, K), as dlib computes it: MI with itself.

    Args:
        labels: (N, K) discrete labels.

    Returns:
        (K,) float64 entropies in nats, >= 0.
    """
    dense, _ = _dense_labels(labels)
    out = np.empty(dense.shape[1])
    for j in range(dense.shape[1]):
        out[j] = discrete_mutual_info(dense[:, j : j + 1], dense[:, j : j + 1])[0, 0]
    return out
