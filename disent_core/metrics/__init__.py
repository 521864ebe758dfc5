"""Disentanglement metrics comparable with disentanglement_lib, under pinned protocols.

``evaluate(representation, dataset, protocol="dlib2019", seed=0, metrics=None)`` scores a
representation with the BetaVAE and FactorVAE scores, MIG, DCI, SAP, modularity and
explicitness, the unsupervised scores, IRS and (for autoencoders, such as the disent_core VAEs)
the held-out reconstruction error and active latents. Protocols (``PROTOCOLS``, ``get_protocol``) pin every
choice that changes a number; see ``disent_core.metrics.protocol``. ``representation_kind="mean"``
(default) or ``"sampled"`` picks disentanglement_lib's mean or sampled representation of a Gaussian
encoder; see ``disent_core.metrics.representation``.
"""

from disent_core.metrics.engine import METRICS, EvaluationResult, evaluate, metric_names
from disent_core.metrics.protocol import PROTOCOLS, Protocol, get_protocol
from disent_core.metrics.representation import REPRESENTATION_KINDS, RepresentationKind

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "REPRESENTATION_KINDS",
    "EvaluationResult",
    "Protocol",
    "RepresentationKind",
    "evaluate",
    "get_protocol",
    "metric_names",
]
