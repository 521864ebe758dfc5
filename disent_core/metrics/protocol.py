"""Evaluation protocols: every choice that changes a score, pinned, named and hashed.

A ``Protocol`` fixes the sample sizes, batch sizes, the discretiser, every estimator and its
settings, the quirks of disentanglement_lib that are kept or fixed, and how random streams derive
from the single evaluation seed. Results carry the protocol's name and ``hash`` (a digest of the
settings only, so two protocols with equal settings share a hash whatever their names).

Built-in protocols (``PROTOCOLS``):

- ``dlib2019``: disentanglement_lib's ``unsupervised_study_v1`` settings (Locatello et al. 2019),
  including the FactorVAE index quirk (a vote lands on the position of the argmin *within the
  active dimensions*, written into the full dimension array) and ``num_active_dims`` reporting all
  dimensions. A dataset with a one-value latent factor is refused (dlib's MIG divides by its zero
  entropy). Logistic regressions use liblinear one-vs-rest, the scikit-learn default of 2019.
- ``corrected``: the same sizes and estimators with the known defects fixed: FactorVAE votes go to
  the true code index and ``num_active_dims`` counts active dimensions; one-value factors are
  dropped from every factor-based metric (and reported in the result's notes).
- ``fast``: reduced sizes for evaluation during training, in the spirit of disent's
  ``compute_fast``: DCI 1000/500 with histogram gradient boosting (``hist_gbt``), MIG, SAP,
  modularity, IRS and the unsupervised metrics on 2000 (and 1000 test) points, and the two
  scores that encode whole batches per data point cut to about 25,000 encoded images: BetaVAE
  300/150 points of 16 pairs (9,600 + 4,800 images instead of dlib's 1.92 million), FactorVAE
  200/100 votes of 32 observations (6,400 + 3,200; disent's ``compute_fast`` uses 700/350 votes
  of 64). With a 64x64 conv encoder on two CPU cores the whole suite takes seconds, not minutes.
  Its numbers are **not comparable** with published ones.

Sizes and settings can be overridden: ``get_protocol("dlib2019").with_sizes(num_train=1000)`` or
``.override({"dci.estimator": "hgb"})``. The new protocol's name records the override
(``dlib2019+num_train=1000``) and its hash changes.

What is deliberately *not* in a protocol: dlib's point-sampling batch size (16), which only
changes which random numbers are drawn in which call, and the device/encoding batch, which change
no score; nor the representation kind (``mean`` or ``sampled``): it says which representation is
measured, not how, and results record it beside the protocol's name and hash. ``chunk_size`` is
pinned because nuisance factors, stochastic observation variants and the noise of a sampled
representation are drawn chunk by chunk from the metric's random stream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from disent_core.errors import ConfigError
from disent_core.registry import Registry

LogisticSolver = Literal["liblinear_ovr", "lbfgs"]
"""``liblinear_ovr``: one-vs-rest liblinear logistic regressions (scikit-learn's default until 0.22,
so the one disentanglement_lib's published numbers used); ``lbfgs``: multinomial, today's default."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiscretizerSettings(_Settings):
    """dlib's ``histogram_discretizer``: per dimension, ``num_bins`` equal-width bins over its range."""

    kind: Literal["histogram"] = "histogram"
    num_bins: int = Field(20, ge=2)


class BetaVAESettings(_Settings):
    """BetaVAE score (Higgins et al. 2017), dlib's ``beta_vae_sklearn``."""

    batch_size: int = Field(64, ge=1, description="observation pairs averaged into one feature vector")
    num_train: int = Field(10_000, ge=2, description="training feature vectors")
    num_eval: int = Field(5_000, ge=1, description="evaluation feature vectors")
    solver: LogisticSolver = "liblinear_ovr"


class FactorVAESettings(_Settings):
    """FactorVAE score (Kim & Mnih 2018), dlib's ``factor_vae_metric``."""

    batch_size: int = Field(64, ge=2, description="observations sharing one fixed factor per vote")
    num_train: int = Field(10_000, ge=1, description="training votes")
    num_eval: int = Field(5_000, ge=1, description="evaluation votes")
    num_variance_estimate: int = Field(10_000, ge=2, description="points for the global variances")
    prune_threshold: float = Field(0.05, ge=0, description="dims with global std below it are inactive")
    index_quirk: bool = Field(
        False, description="dlib's bug: vote at the argmin's position within the active dims"
    )


class MIGSettings(_Settings):
    """Mutual information gap (Chen et al. 2018), dlib's discrete estimator."""

    num_train: int = Field(10_000, ge=2)


class DCISettings(_Settings):
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018)."""

    num_train: int = Field(10_000, ge=2)
    num_test: int = Field(5_000, ge=1)
    estimator: Literal["gbt", "hist_gbt", "hgb"] = Field(
        "gbt",
        description="gbt: GradientBoostingClassifier() with all defaults (dlib); hist_gbt: "
        "HistGradientBoostingClassifier with gbt's settings (100 iterations, learning rate 0.1, depth 3, "
        "min_samples_leaf 1, no early stopping) and gbt's importances (residual squared error removed "
        "by the splits), over 10 times faster, close to gbt but not equal; hgb: the same booster with "
        "min_samples_leaf 20 and split-gain importances (kept for results recorded with it). "
        "See disent_core.metrics.dci",
    )


class SAPSettings(_Settings):
    """Separated attribute predictability (Kumar et al. 2018)."""

    num_train: int = Field(10_000, ge=2)
    num_test: int = Field(5_000, ge=1)
    continuous_factors: bool = Field(
        False, description="False: LinearSVC accuracy per (code, factor); True: squared correlation"
    )
    svc_c: float = Field(0.01, gt=0, description="C of LinearSVC(C, class_weight='balanced')")


class ModularitySettings(_Settings):
    """Modularity and explicitness (Ridgeway & Mozer 2018)."""

    num_train: int = Field(10_000, ge=2)
    num_test: int = Field(5_000, ge=1)
    solver: LogisticSolver = "liblinear_ovr"


class UnsupervisedSettings(_Settings):
    """Gaussian total correlation, Wasserstein correlation and mean pairwise discrete MI."""

    num_train: int = Field(10_000, ge=2)


class IRSSettings(_Settings):
    """Interventional robustness score (Suter et al. 2019), dlib's ``irs``."""

    num_train: int = Field(10_000, ge=2)
    diff_quantile: float = Field(0.99, gt=0, le=1)


class ReconstructionSettings(_Settings):
    """Held-out reconstruction error and active latents of an autoencoder."""

    num_points: int = Field(5_000, ge=1)
    kl_threshold: float = Field(0.01, ge=0, description="a latent is active when its mean KL exceeds it")


class Protocol(_Settings):
    """Everything that determines a score except the representation, the dataset and the seed."""

    name: str
    description: str = ""
    comparable: bool = Field(True, description="numbers can be set beside disentanglement_lib's")
    seed_scheme: Literal["seedsequence-v1"] = Field(
        "seedsequence-v1",
        description="each random stream is Generator(PCG64(SeedSequence(seed, spawn_key=(crc32(stream "
        "name),)))); streams: points/train, points/test, <metric>, <metric>/estimator; a sampled "
        "representation's noise: the children of the stream that drew the observations",
    )
    chunk_size: int = Field(1024, ge=1, description="observations rendered and encoded per call")
    one_value_factors: Literal["error", "drop"] = Field(
        "error", description="latent factors with a single value: refuse the dataset, or drop them"
    )
    discretizer: DiscretizerSettings = DiscretizerSettings()
    beta_vae: BetaVAESettings = BetaVAESettings()
    factor_vae: FactorVAESettings = FactorVAESettings()
    mig: MIGSettings = MIGSettings()
    dci: DCISettings = DCISettings()
    sap: SAPSettings = SAPSettings()
    modularity: ModularitySettings = ModularitySettings()
    unsupervised: UnsupervisedSettings = UnsupervisedSettings()
    irs: IRSSettings = IRSSettings()
    reconstruction: ReconstructionSettings = ReconstructionSettings()

    # --- identity ----------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The settings that the hash covers (everything but the name and the description)."""
        return self.model_dump(mode="json", exclude={"name", "description"})

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON of ``settings()``."""
        text = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- overrides ---------------------------------------------------------------------------
    def override(self, changes: Mapping[str, Any], name: str | None = None) -> Protocol:
        """A copy with dotted-path settings changed (``{"dci.num_train": 1000}``).

        The copy is named ``name`` or ``<this name>+<path>=<value>,...`` and is marked not
        comparable (unless ``comparable`` itself is set).

        Args:
            changes: {dotted setting path: new value}.
            name: the copy's name (default: derived from the changes).

        Returns:
            The validated copy.

        Raises:
            ConfigError: an unknown path or an invalid value, named in the message.
        """
        data = self.model_dump()
        for path, value in changes.items():
            node = data
            *parents, leaf = path.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown protocol setting {path!r}")
                node = node[part]
            if leaf not in node or isinstance(node[leaf], dict) or leaf in ("name", "description"):
                raise ConfigError(f"unknown protocol setting {path!r}")
            node[leaf] = value
        suffix = ",".join(f"{path}={changes[path]}" for path in sorted(changes))
        data["name"] = name or (f"{self.name}+{suffix}" if suffix else self.name)
        if changes and "comparable" not in changes:
            data["comparable"] = False
        try:
            return Protocol.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid protocol override: {problems}") from None

    def with_sizes(self, **sizes: int) -> Protocol:
        """A copy with sample sizes changed in every metric that has them.

        Keys: ``num_train``, ``num_test``, ``num_eval``, ``batch_size``,
        ``num_variance_estimate``, ``num_points``. For example ``with_sizes(num_train=1000,
        num_test=500)`` shrinks every train and test set; the name becomes
        ``<name>+num_test=500,num_train=1000`` and the protocol is marked not comparable.

        Args:
            **sizes: {size key: new value} for the keys above.

        Returns:
            The validated copy.

        Raises:
            ConfigError: an unknown size key or an invalid value.
        """
        changes: dict[str, Any] = {}
        sections = {k: v for k, v in self.model_dump().items() if isinstance(v, dict)}
        for key, value in sizes.items():
            if key not in _SIZE_KEYS:
                raise ConfigError(f"unknown size {key!r}; sizes are {', '.join(sorted(_SIZE_KEYS))}")
            changes.update({f"{name}.{key}": value for name, fields in sections.items() if key in fields})
        suffix = ",".join(f"{key}={sizes[key]}" for key in sorted(sizes))
        return self.override(changes, name=f"{self.name}+{suffix}" if suffix else self.name)


_SIZE_KEYS = frozenset(
    {"num_train", "num_test", "num_eval", "batch_size", "num_variance_estimate", "num_points"}
)

DLIB2019 = Protocol(
    name="dlib2019",
    description="disentanglement_lib unsupervised_study_v1 settings, FactorVAE index quirk included",
    factor_vae=FactorVAESettings(index_quirk=True),
)

CORRECTED = Protocol(
    name="corrected",
    description="dlib2019 with known defects fixed: FactorVAE vote index and num_active_dims, "
    "one-value factors dropped instead of dividing by their zero entropy",
    one_value_factors="drop",
)

FAST = Protocol(
    name="fast",
    description="reduced sizes for evaluation during training (disent compute_fast spirit); "
    "NOT comparable with published numbers",
    comparable=False,
    one_value_factors="drop",
    beta_vae=BetaVAESettings(batch_size=16, num_train=300, num_eval=150),
    factor_vae=FactorVAESettings(batch_size=32, num_train=200, num_eval=100, num_variance_estimate=1000),
    mig=MIGSettings(num_train=2000),
    dci=DCISettings(num_train=1000, num_test=500, estimator="hist_gbt"),
    sap=SAPSettings(num_train=2000, num_test=1000),
    modularity=ModularitySettings(num_train=2000, num_test=1000),
    unsupervised=UnsupervisedSettings(num_train=2000),
    irs=IRSSettings(num_train=2000),
    reconstruction=ReconstructionSettings(num_points=1000),
)

PROTOCOLS: Registry[Protocol] = Registry(
    "evaluation protocol", ((p.name, p) for p in (DLIB2019, CORRECTED, FAST))
)


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The built-in protocol named ``protocol`` (a ``Protocol`` is returned unchanged).

    Args:
        protocol: ``"dlib2019"``, ``"corrected"``, ``"fast"``, or a ``Protocol``.

    Returns:
        The protocol.

    Raises:
        UnknownNameError: an unknown name.
    """
    if isinstance(protocol, Protocol):
        return protocol
    return PROTOCOLS[protocol]
