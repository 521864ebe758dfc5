"""The memory a training run needs, estimated from its config before anything is allocated.

``estimate_training_memory`` builds the run's encoder and decoder (``disent_core.models.conv64``,
its ``model.architecture``, ``base_channels`` and ``latent_dim``) on PyTorch's ``meta`` device, which
records shapes and allocates nothing, follows one image's shape through their layers (each
convolution's size from its kernel, stride and padding) and counts:

- ``parameters``: the weights, float32;
- ``optimizer``: a gradient and Adam's two moment estimates per weight;
- ``activations``: every layer's output for a batch of ``train.batch_size`` images (autograd keeps
  them for the backward pass), the input batch as float32 and the per-pixel reconstruction loss;
- ``batches``: the uint8 batches the data stream prepares ahead (``train.prefetch``) and the one
  being converted, in host memory.

It is a lower bound: the images are taken as 1 x 64 x 64, the smallest observations of a registered
dataset, and methods with more networks (FactorVAE's discriminator, DEFT's sub-encoders, DiD) and
the dataset's own store need more on top. A config whose lower bound already exceeds the memory
available now cannot run; ``check_training_memory`` refuses it with the estimate, what is available
and the settings that drive it, in well under a second.

Available memory (``available_memory``) is psutil's ``virtual_memory().available`` when psutil is
installed, else Linux's ``MemAvailable`` from /proc/meminfo, capped by a cgroup v2 memory limit; on
a CUDA device the model's share is compared with ``torch.cuda.mem_get_info``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from disent_core.config import TrainConfig
from disent_core.errors import ConfigError
from disent_core.models.conv64 import ConvEncoder, DeconvDecoder

FLOAT_BYTES = 4
SMALLEST_OBSERVATION = (1, 64, 64)
"""(C, H, W) of the smallest observations of any registered dataset (dSprites, SmallNORB)."""
_MEMINFO = Path("/proc/meminfo")
_CGROUP = Path("/sys/fs/cgroup")
Shape = tuple[int, ...]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training run needs at least, by part.

    Attributes:
        parameters: the model's weights.
        optimizer: their gradients and Adam's two moment estimates.
        activations: one batch's layer outputs, input and per-pixel loss.
        batches: the uint8 batches of the data stream, in host memory.
        device: where the model lives, ``cpu`` or ``cuda``.
    """

    parameters: int
    optimizer: int
    activations: int
    batches: int
    device: str

    @property
    def model(self) -> int:
        """Bytes on the model's device: weights, optimiser state and activations."""
        return self.parameters + self.optimizer + self.activations

    @property
    def total(self) -> int:
        return self.model + self.batches


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``: a byte count in the largest binary unit below it.

    Args:
        count: bytes.

    Returns:
        The count with one decimal and its unit.
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _model_device(choice: str) -> str:
    """``cpu`` or ``cuda``: where ``train.device`` puts the model on this machine."""
    if choice == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def _conv_size(size: int, module: nn.Conv2d | nn.ConvTranspose2d, axis: int) -> int:
    """The output size along ``axis`` (0: height, 1: width) of a convolution or its transpose."""
    kernel, stride = module.kernel_size[axis], module.stride[axis]
    padding, dilation = module.padding[axis], module.dilation[axis]
    if isinstance(module, nn.ConvTranspose2d):
        return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + module.output_padding[axis] + 1
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _layer_outputs(layers: list[nn.Module], shape: Shape) -> tuple[Shape, int]:
    """The shape of one sample after ``layers`` and the elements of every new tensor on the way.

    Args:
        layers: the layers in the order of the forward pass.
        shape: one sample's input shape, (C, H, W) or (features,).

    Returns:
        ``(output shape, elements)``; ``Flatten`` and ``Unflatten`` return views and count nothing.
    """
    elements = 0
    for layer in layers:
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            shape = (layer.out_channels, _conv_size(shape[1], layer, 0), _conv_size(shape[2], layer, 1))
        elif isinstance(layer, nn.Linear):
            shape = (layer.out_features,)
        elif isinstance(layer, nn.Flatten):
            shape = (math.prod(shape),)
            continue
        elif isinstance(layer, nn.Unflatten):
            shape = tuple(layer.unflattened_size)
            continue
        elements += math.prod(shape)
    return shape, elements


def estimate_training_memory(
    config: TrainConfig, observation_shape: tuple[int, int, int] = SMALLEST_OBSERVATION
) -> MemoryEstimate:
    """The least memory that training ``config`` needs (see the module docstring).

    Args:
        config: the training config.
        observation_shape: (C, H, W) of the dataset's images, when known.

    Returns:
        The estimate, by part.
    """
    model = config.model
    channels = observation_shape[0]
    with torch.device("meta"):
        encoder = ConvEncoder(channels, model.latent_dim, model.base_channels, model.architecture)
        decoder = DeconvDecoder(model.latent_dim, channels, model.base_channels, model.architecture)
    _, features = _layer_outputs(list(encoder.features), observation_shape)
    _, decoded = _layer_outputs([*decoder.dense, *decoder.deconv], (model.latent_dim,))
    weights = sum(p.numel() for net in (encoder, decoder) for p in net.parameters())
    pixels = math.prod(observation_shape)
    batch = config.train.batch_size
    # the input, the mean and log-variance heads, the decoder's layers and the per-pixel loss
    per_image = pixels + features + 2 * model.latent_dim + decoded + pixels
    return MemoryEstimate(
        parameters=weights * FLOAT_BYTES,
        optimizer=3 * weights * FLOAT_BYTES,
        activations=batch * per_image * FLOAT_BYTES,
        batches=(config.train.prefetch + 1) * batch * pixels,
        device=_model_device(config.train.device),
    )


def _cgroup_available() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit, or None without a limit."""
    try:
        limit = (_CGROUP / "memory.max").read_text().strip()
        used = int((_CGROUP / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    try:
        return max(int(limit) - used, 0)
    except ValueError:
        return None


def available_memory() -> int | None:
    """Bytes of host memory available to this process now, or None where it cannot be told.

    Returns:
        psutil's ``available`` when psutil is installed, else ``MemAvailable`` of /proc/meminfo,
        either capped by a cgroup v2 limit; None when neither can be read.
    """
    found: int | None = None
    try:
        import psutil

        found = int(psutil.virtual_memory().available)
    except ImportError:
        try:
            for line in _MEMINFO.read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):
            found = None
    limit = _cgroup_available()
    if limit is not None:
        found = limit if found is None else min(found, limit)
    return found


def check_training_memory(config: TrainConfig) -> MemoryEstimate:
    """Refuse a config whose least memory need exceeds the memory available now.

    Args:
        config: the training config.

    Returns:
        The estimate, when it fits (or when the available memory cannot be told).

    Raises:
        ConfigError: the estimate, what is available, and the settings to lower.
    """
    estimate = estimate_training_memory(config)
    host = available_memory()
    if estimate.device == "cuda":
        gpu_free, _ = torch.cuda.mem_get_info()
        needs = [("GPU", estimate.model, gpu_free), ("host", estimate.batches, host)]
    else:
        needs = [("host", estimate.total, host)]
    for where, needed, available in needs:
        if available is None or needed <= available:
            continue
        model, train = config.model, config.train
        raise ConfigError(
            f"training needs at least {format_bytes(needed)} of {where} memory but "
            f"{format_bytes(available)} is available: activations of a batch of {train.batch_size} images "
            f"{format_bytes(estimate.activations)}, parameters and Adam state "
            f"{format_bytes(estimate.parameters + estimate.optimizer)} (model.base_channels "
            f"{model.base_channels}, model.latent_dim {model.latent_dim}), data batches "
            f"{format_bytes(estimate.batches)}; lower train.batch_size or model.base_channels"
        )
    return estimate
