"""Two ways to fuse N conv VAEs into one model: vmap over stacked parameters, or grouped convolutions.

    python bench/fusion_kernels.py [--members 1,2,4,8,16,32] [--seconds 10] [--base-channels 32]
                                   [--batch 64] [--architecture dlib] [--device auto]

``disent_core.population`` fuses its members with ``torch.func``: their parameters stacked
(``stack_module_state``), each network run once for all members by ``vmap(functional_call)``. HFTA
(Wang et al., "Horizontally Fused Training Array", MLSys 2021) rewrites every layer as one wider
layer instead: a convolution over the members' channels side by side with ``groups=N`` (a
transposed one likewise), a dense layer as a batched matrix product. Both compute the same function
of the same parameters; which runs faster is a matter of the device's kernels, so this bench measures
it where it runs.

For each N it builds N members of the standard encoder and decoder (``disent_core.models.conv64``),
stacks their parameters once, and runs both forms on those same tensors: first it checks that their
means, log-variances and logits agree (``max_relative_difference[N]``; float rounding only), then it
times a training step of each (each member's own batch, Bernoulli reconstruction plus KL of a
beta-VAE with beta 4, backward, one ``torch.optim.Adam`` step over the stacked parameters) for
``--seconds`` after ``--warmup`` steps, alternating the two forms ``--rounds`` times, and prints the
median images/s of each (N members x the batch per step) and ``grouped_vs_vmap[N]: R``. The data are
uniform random images (this compares kernels, not learning); fp32.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from disent_core.models.conv64 import ARCHITECTURES, ConvEncoder, DeconvDecoder

LATENTS, BETA, CHANNELS, SIZE = 10, 4.0, 1, 64
Params = dict[str, torch.Tensor]


def grouped_layers(
    layers: list[tuple[str, nn.Module]], params: Params, h: torch.Tensor, n: int
) -> torch.Tensor:
    """Run ``layers`` of N members as wide layers (HFTA's horizontal fusion) on their stacked ``params``.

    Args:
        layers: (parameter prefix, layer) of one member's network, in order.
        params: the members' parameters stacked (``stack_module_state``), (N, ...) each.
        h: the members' activations side by side: (B, N * C, H, W) for convolutions, (B, N, F) for
            dense layers.
        n: the number of members.

    Returns:
        The activations after the layers, in the same layout.

    Raises:
        TypeError: a layer this fusion does not cover.
    """
    for name, layer in layers:
        if isinstance(layer, nn.Conv2d):
            weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
            h = F.conv2d(h, weight.flatten(0, 1), bias.flatten(), stride=layer.stride, padding=layer.padding,
                         groups=n)
        elif isinstance(layer, nn.ConvTranspose2d):
            weight, bias = params[f"{name}.weight"], params[f"{name}.bias"]
            h = F.conv_transpose2d(h, weight.flatten(0, 1), bias.flatten(), stride=layer.stride,
                                   padding=layer.padding, output_padding=layer.output_padding, groups=n)
        elif isinstance(layer, nn.Linear):
            h = torch.einsum("bni,noi->bno", h, params[f"{name}.weight"]) + params[f"{name}.bias"]
        elif isinstance(layer, nn.ReLU):
            h = F.relu(h)
        elif isinstance(layer, nn.Flatten):
            h = h.reshape(h.shape[0], n, -1)
        elif isinstance(layer, nn.Unflatten):
            channels, *rest = layer.unflattened_size
            h = h.reshape(h.shape[0], n * channels, *rest)
        else:
            raise TypeError(f"grouped fusion does not cover {type(layer).__name__}")
    return h


class Members:
    """N members' encoders and decoders, their stacked parameters, and both fused forms of their VAE.

    Args:
        n: members.
        base_channels: the networks' width.
        architecture: ``dlib`` or ``erow``.
        device: where the parameters live.
    """

    def __init__(self, n: int, base_channels: int, architecture: str, device: torch.device) -> None:
        torch.manual_seed(0)
        encoders = [ConvEncoder(CHANNELS, LATENTS, base_channels, architecture) for _ in range(n)]
        decoders = [DeconvDecoder(LATENTS, CHANNELS, base_channels, architecture) for _ in range(n)]
        encoders, decoders = [e.to(device) for e in encoders], [d.to(device) for d in decoders]
        self.n = n
        self.encoder = encoders[0]
        self.decoder = decoders[0]
        encoder_params, _ = stack_module_state(encoders)
        decoder_params, _ = stack_module_state(decoders)
        self.params: Params = {**{f"encoder.{k}": v for k, v in encoder_params.items()},
                               **{f"decoder.{k}": v for k, v in decoder_params.items()}}
        features = self.encoder.features
        self.encoder_layers = [(f"encoder.features.{i}", layer) for i, layer in enumerate(features)]
        decoder = self.decoder
        self.decoder_layers = [
            *((f"decoder.dense.{i}", layer) for i, layer in enumerate(decoder.dense)),
            *((f"decoder.deconv.{i}", layer) for i, layer in enumerate(decoder.deconv)),
        ]

    def _part(self, prefix: str) -> Params:
        return {k.removeprefix(prefix): v for k, v in self.params.items() if k.startswith(prefix)}

    def vmapped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, logvar, logits) of every member, (N, B, ...), through ``vmap(functional_call)``."""
        mean, logvar = torch.func.vmap(lambda p, xi: functional_call(self.encoder, p, (xi,)))(
            self._part("encoder."), x)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        decode = torch.func.vmap(lambda p, zi: functional_call(self.decoder, p, (zi,)))
        logits = decode(self._part("decoder."), z)
        return mean, logvar, logits

    def grouped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, logvar, logits) of every member, (N, B, ...), through grouped convolutions."""
        n, batch = x.shape[:2]
        wide = x.transpose(0, 1).reshape(batch, n * x.shape[2], *x.shape[3:])
        h = grouped_layers(self.encoder_layers, self.params, wide, n)
        mean = grouped_layers([("encoder.mean", self.encoder.mean)], self.params, h, n).transpose(0, 1)
        logvar = grouped_layers([("encoder.logvar", self.encoder.logvar)], self.params, h, n).transpose(0, 1)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        logits = grouped_layers(self.decoder_layers, self.params, z.transpose(0, 1), n)
        return mean, logvar, logits.reshape(batch, n, *x.shape[2:]).transpose(0, 1)


def loss(outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The members' beta-VAE losses summed: Bernoulli reconstruction and beta * KL, each a batch mean."""
    mean, logvar, logits = outputs
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(2).sum(-1).mean(-1)
    kl = (0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)).sum(-1).mean(-1)
    return (recon + BETA * kl).sum()


def max_relative_difference(members: Members, x: torch.Tensor) -> float:
    """The largest relative difference between the two forms' means, log-variances and logits."""
    with torch.no_grad():
        torch.manual_seed(1)
        a = members.vmapped(x)
        torch.manual_seed(1)
        b = members.grouped(x)
    return max(((u - v).abs().max() / u.abs().max().clamp_min(1e-12)).item()
               for u, v in zip(a, b, strict=True))


def images_per_sec(
    members: Members, forward: Callable, x: torch.Tensor, warmup: int, seconds: float
) -> float:
    """Train steps of one form for ``seconds`` after ``warmup`` steps; the members' images per second."""
    optimizer = torch.optim.Adam(list(members.params.values()), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(forward(x), x).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
        if x.is_cuda and steps % 10 == 0:
            torch.cuda.synchronize()
    if x.is_cuda:
        torch.cuda.synchronize()
    return steps * x.shape[0] * x.shape[1] / (time.perf_counter() - start)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="1,2,4,8,16,32", help="comma-separated population sizes")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per form and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two forms")
    parser.add_argument("--batch", type=int, default=64, help="images per member per step")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="dlib")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args()
    try:
        args.members = [int(v) for v in args.members.split(",")]
    except ValueError:
        parser.error(f"--members takes comma-separated integers, got {args.members!r}")
    if any(n < 1 for n in args.members):
        parser.error("--members must all be at least 1")
    return args


def main() -> None:
    args = _arguments()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"fusion_kernels: device {device} ({name}), torch {torch.__version__}, batch {args.batch} per "
          f"member, base_channels {args.base_channels}, {args.architecture}, fp32", flush=True)
    for n in args.members:
        members = Members(n, args.base_channels, args.architecture, device)
        x = torch.rand(n, args.batch, CHANNELS, SIZE, SIZE, device=device)
        print(f"max_relative_difference[{n}]: {max_relative_difference(members, x):.1e}", flush=True)
        rates: dict[str, list[float]] = {"vmap": [], "grouped": []}
        for _ in range(args.rounds):
            for form, forward in (("vmap", members.vmapped), ("grouped", members.grouped)):
                rates[form].append(images_per_sec(members, forward, x, args.warmup, args.seconds))
        vmap, grouped = (statistics.median(rates[form]) for form in ("vmap", "grouped"))
        print(f"images_per_sec[{n}]: vmap {vmap:,.0f}  grouped {grouped:,.0f}", flush=True)
        print(f"grouped_vs_vmap[{n}]: {grouped / vmap:.2f}", flush=True)


if __name__ == "__main__":
    main()
