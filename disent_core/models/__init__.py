"""Network architectures shared by the methods."""

from disent_core.models.conv64 import ConvEncoder, DeconvDecoder
from disent_core.models.discriminator import FactorDiscriminator
from disent_core.models.gan64 import ConvNet, DCGANGenerator

__all__ = ["ConvEncoder", "ConvNet", "DCGANGenerator", "DeconvDecoder", "FactorDiscriminator"]
