"""The method registry: adding a method is its module plus one line in ``METHOD_CLASSES``."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from disent_core.methods.annealed_vae import AnnealedVAE
from disent_core.methods.base import Method, MethodConfig, MethodContext
from disent_core.methods.beta_tcvae import BetaTCVAE
from disent_core.methods.beta_vae import BetaVAE
from disent_core.methods.cascade_vae import CascadeVAE
from disent_core.methods.control_vae import ControlVAE
from disent_core.methods.deft import DEFT
from disent_core.methods.devae import DeVAE
from disent_core.methods.did import DiD
from disent_core.methods.dip_vae import DIPVAEI, DIPVAEII
from disent_core.methods.dynamic_vae import DynamicVAE
from disent_core.methods.factor_vae import FactorVAE
from disent_core.registry import Registry

METHOD_CLASSES: list[type[Method]] = [
    BetaVAE,
    AnnealedVAE,
    FactorVAE,
    BetaTCVAE,
    DIPVAEI,
    DIPVAEII,
    DiD,
    DEFT,
    DeVAE,
    DynamicVAE,
    ControlVAE,
    CascadeVAE,
]
METHODS: Registry[type[Method]] = Registry("method", ((cls.name, cls) for cls in METHOD_CLASSES))
"""Every method class by name; eager, since ``AnyMethodConfig`` needs every config class."""

AnyMethodConfig = Annotated[
    Union[tuple(cls.config_class for cls in METHOD_CLASSES)],  # noqa: UP007
    Field(discriminator="name"),
]


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``, or an error listing the closest valid names.

    Args:
        name: a method name or alias (``"beta_vae"``).

    Returns:
        The ``Method`` subclass.

    Raises:
        UnknownNameError: ``name`` is not registered.
    """
    return METHODS[name]


def build_method(config: MethodConfig, context: MethodContext) -> Method:
    """Instantiate the method that ``config.name`` names.

    Args:
        config: the method's hyperparameters (its class's ``config_class``).
        context: data shape, latent dimension, dataset size and generator.

    Returns:
        The built method.

    Raises:
        UnknownNameError: ``config.name`` is not registered.
    """
    return method_class(config.name)(config, context)
