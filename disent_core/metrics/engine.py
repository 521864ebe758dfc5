"""The evaluation engine: ``evaluate(representation, dataset, protocol, seed, metrics)``.

1. Resolve the protocol and the metrics; check the dataset's factors (one-value factors are
   refused or dropped, as the protocol says).
2. Wrap the representation into one function from float32 observations (N, C, H, W) in [0, 1] to
   float64 codes (N, D) of the requested kind, ``mean`` or ``sampled`` (disentanglement_lib's
   mean and sampled representations; ``disent_core.metrics.representation``): a disent_core
   method (an ``Encoder``), any ``nn.Module`` returning codes or (mean, logvar), or a numpy
   callable. Modules run in eval mode under ``torch.inference_mode`` on ``device`` (CUDA when
   available), and are restored afterwards. The wrapped function says whether it is
   deterministic; only then, and on a dataset whose observations are a function of their grid
   point, are codes of a grid point reused.
3. Draw and encode the union of the shared point sets once (per role the largest request).
4. Run each metric on the shared context and prefix its keys with its name
   (``mig.discrete_mig``). Per-factor fits run in parallel over ``n_jobs`` workers.

The result is an ``EvaluationResult``: a ``dict[str, float]`` that also records the protocol's
name and hash, the representation kind, the dataset's provenance, the seed, library versions,
per-metric timings and notes (skipped metrics, dropped factors). The kind is recorded beside the
protocol, not in its hash: the protocol pins how a representation is measured, the kind says which
representation is measured (dlib, too, configures postprocessing apart from the metrics), so the
mean and sampled scores of one protocol share its hash and are told apart by the kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
import torch

from disent_core.errors import MetricError
from disent_core.latents import Autoencoder
from disent_core.metrics import (
    beta_vae_score,
    dci,
    factor_vae_score,
    irs,
    mig,
    modularity,
    reconstruction,
    sap,
    unsupervised,
)
from disent_core.metrics.base import ROLES, EvalContext, MetricSpec
from disent_core.metrics.protocol import Protocol, get_protocol
from disent_core.metrics.representation import (
    REPRESENTATION_KINDS,
    Representation,
    RepresentationKind,
    representation_function,
)
from disent_core.registry import Registry

log = logging.getLogger(__name__)

METRICS: Registry[MetricSpec] = Registry(
    "metric",
    (
        (spec.name, spec)
        for spec in (
            beta_vae_score.SPEC,
            factor_vae_score.SPEC,
            mig.SPEC,
            dci.SPEC,
            sap.SPEC,
            modularity.SPEC,
            unsupervised.SPEC,
            irs.SPEC,
            reconstruction.SPEC,
        )
    ),
)
"""Every metric by name, in evaluation order; result keys are ``<name>.<key>``."""


class EvaluationResult(dict[str, float]):
    """Scores keyed ``<metric>.<key>``, plus what produced them."""

    def __init__(
        self,
        scores: dict[str, float],
        protocol: Protocol,
        seed: int,
        notes: dict[str, str],
        timings: dict[str, float],
        representation_kind: RepresentationKind,
        dataset_provenance: str,
    ) -> None:
        super().__init__(scores)
        self.dataset_provenance = dataset_provenance
        self.protocol = protocol.name
        self.protocol_hash = protocol.hash
        self.comparable = protocol.comparable
        self.representation_kind = representation_kind
        self.seed = seed
        self.notes = notes
        self.timings = timings
        self.versions = {name: version(name) for name in ("numpy", "scipy", "scikit-learn", "torch")}

    def metadata(self) -> dict[str, str]:
        """Provenance as strings (tracking tags): protocol, hash, representation kind, the data's
        provenance (``procedural`` or the real files' SHA-256), seed, versions, notes."""
        tags = {
            "protocol": self.protocol,
            "protocol_hash": self.protocol_hash,
            "protocol_comparable": str(self.comparable).lower(),
            "representation": self.representation_kind,
            "dataset_provenance": self.dataset_provenance,
            "seed": str(self.seed),
        }
        tags.update({f"version.{k}": v for k, v in self.versions.items()})
        tags.update({f"note.{k}": v for k, v in self.notes.items()})
        return tags

    def record(self) -> dict[str, Any]:
        """The scores with their provenance, as one JSON-ready mapping (what evaluation files hold).

        Returns:
            ``scores``, the provenance of ``metadata`` (versions and notes as mappings of their own)
            and the per-metric ``timings``.
        """
        provenance = {k: v for k, v in self.metadata().items() if not k.startswith(("note.", "version."))}
        return {"scores": dict(self), **provenance, "versions": self.versions, "notes": self.notes,
                "timings": self.timings}


def metric_names() -> list[str]:
    """Names of every metric, in evaluation order."""
    return METRICS.names()


def evaluate(
    representation: Representation,
    dataset: Any,
    protocol: str | Protocol = "dlib2019",
    seed: int = 0,
    metrics: Sequence[str] | None = None,
    *,
    device: str | torch.device | None = None,
    n_jobs: int = -1,
    batch_size: int | None = None,
    representation_kind: RepresentationKind = "mean",
) -> EvaluationResult:
    """Score ``representation`` on ``dataset`` with every metric (or ``metrics``) of ``protocol``.

    Args:
        representation: an ``Encoder`` (``disent_core.latents``: every disent_core method), an
            ``nn.Module`` returning codes or (mean, logvar),
            or a callable mapping a float32 numpy batch (N, C, H, W) in [0, 1] to codes (N, D) or
            to (mean, logvar). A callable or module whose codes are random declares
            ``deterministic = False``.
        dataset: a ground-truth dataset (``disent_core.data.get_dataset``).
        protocol: a protocol or the name of a built-in one.
        seed: the one evaluation seed every random stream derives from.
        metrics: names of the metrics to compute (default: all).
        device: where modules run (default: CUDA when available, else where the module is).
        n_jobs: workers for per-factor fits (joblib convention, -1 = all cores).
        batch_size: observations per call of the representation (default: ``CPU_BATCH_SIZE`` for
            a module on the CPU, else the protocol's whole chunk); no score depends on it beyond
            floating-point rounding.
        representation_kind: ``"mean"`` scores the posterior mean (an Encoder's ``representation``,
            the first of a (mean, logvar) pair, or the codes); ``"sampled"`` scores
            mean + exp(logvar / 2) * eps with fresh eps for every observation encoded, drawn from
            generators seeded from ``seed`` (``disent_core.metrics.representation``).

    Returns:
        The scores keyed ``<metric>.<key>``, with their provenance.

    Raises:
        MetricError: a metric cannot be computed, or the representation has no (mean, logvar) to
            sample (``representation_kind="sampled"``).
    """
    protocol = get_protocol(protocol)
    if representation_kind not in REPRESENTATION_KINDS:
        raise ValueError(
            f"representation_kind must be one of {', '.join(map(repr, REPRESENTATION_KINDS))}, "
            f"got {representation_kind!r}"
        )
    if batch_size is not None and (
        not isinstance(batch_size, int | np.integer) or isinstance(batch_size, bool) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"the evaluation seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    names = _resolve(metrics)
    notes: dict[str, str] = {}
    specs = []
    for spec in (METRICS[n] for n in names):
        if spec.accepts is None or spec.accepts(representation):
            specs.append(spec)
        else:
            notes[spec.name] = (
                f"skipped: it needs {spec.requirement}; the representation is a "
                f"{type(representation).__name__}"
            )
            log.info("%s %s", spec.name, notes[spec.name])
    autoencoder = representation if isinstance(representation, Autoencoder) else None
    scored = _scored_factors(dataset, protocol, [s.name for s in specs if s.uses_factors], notes)
    timings: dict[str, float] = {}
    scores: dict[str, float] = {}
    with representation_function(representation, representation_kind, device, batch_size) as encode:
        ctx = EvalContext(
            dataset,
            protocol,
            seed,
            encode,
            scored,
            n_jobs=n_jobs,
            autoencoder=autoencoder,
            batch_size=encode.batch_size,
            deterministic=encode.deterministic,
        )
        needs = {role: max((s.points(protocol).get(role, 0) for s in specs), default=0) for role in ROLES}
        start = time.perf_counter()
        for role, n in needs.items():
            if n > 0:
                ctx.point_sets[role] = ctx.draw_points(role, n)
        timings["points"] = time.perf_counter() - start
        for spec in specs:
            start = time.perf_counter()
            values = spec.compute(ctx)
            timings[spec.name] = time.perf_counter() - start
            for key in spec.keys:
                scores[f"{spec.name}.{key}"] = _checked(spec.name, key, values[key])
            log.info("%s done in %.2fs", spec.name, timings[spec.name])
    provenance = getattr(dataset, "provenance", None)
    label = provenance.label() if provenance is not None else "unknown"
    return EvaluationResult(scores, protocol, seed, notes, timings, representation_kind, label)


def _resolve(metrics: Sequence[str] | None) -> list[str]:
    if metrics is None:
        return METRICS.names()
    if isinstance(metrics, str):
        metrics = [metrics]
    asked = {METRICS.resolve(name) for name in metrics}
    return [name for name in METRICS if name in asked]


def _scored_factors(
    dataset: Any, protocol: Protocol, factor_metrics: list[str], notes: dict[str, str]
) -> np.ndarray:
    """Latent factor columns the metrics score, after the protocol's one-value-factor policy."""
    sizes = np.asarray(dataset.factors_num_values, dtype=np.int64)
    names = list(getattr(dataset, "factor_names", [f"factor {k}" for k in range(len(sizes))]))
    single = [names[k] for k in np.flatnonzero(sizes == 1)]
    if not factor_metrics or not single:
        return np.flatnonzero(sizes >= 1)
    if protocol.one_value_factors == "error":
        raise MetricError(
            f"latent factor(s) {', '.join(single)} take a single value; under protocol "
            f"{protocol.name!r} (disentanglement_lib's settings) {', '.join(factor_metrics)} are "
            "undefined for them (MIG divides by their zero entropy). Use protocol='corrected', which "
            "drops one-value factors, or make them nuisance factors of the dataset"
        )
    scored = np.flatnonzero(sizes > 1)
    if len(scored) == 0:
        raise MetricError(
            f"every latent factor takes a single value; {', '.join(factor_metrics)} need one that varies"
        )
    notes["factors"] = f"dropped one-value factor(s): {', '.join(single)}"
    return scored


def _checked(metric: str, key: str, value: float) -> float:
    value = float(value)
    if np.isnan(value):
        raise MetricError(f"{metric}.{key} is NaN; this is a bug, please report it with the inputs")
    return value
