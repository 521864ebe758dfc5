"""Network architectures shared by the methods."""

from disent_core.models.conv64 import ConvEncoder, DeconvDecoder
from disent_core.models.discriminator import FactorDiscriminator

__all__ = ["ConvEncoder", "DeconvDecoder", "FactorDiscriminator"]
