"""Throughput of ``train()`` against a bare PyTorch loop of the same model, measured side by side.

    python bench/train_throughput.py [--steps 150] [--rounds 3] [--threads N] [--channels-last]

Prints images/s of ``train()`` for beta-VAE on dSprites-shaped data (procedural dSprites, batch 64,
10 latents), images/s of a bare forward/backward/Adam loop of the same model on one pre-made batch,
images/s of the data sampling alone, images/s of ``train()`` under ``train.precision: bf16``, and
three ratios:

    trainer_vs_bare: R        (target >= 0.95)
    sampling_vs_training: R   (target >= 10)
    trainer_bf16_vs_fp32: R   (bf16 autocast against the fp32 reference; > 1 where the CPU or GPU
                               has bf16 arithmetic, e.g. avx512_bf16 or AMX)

Rounds alternate the trainer (fp32, bf16) and the bare loop so that machine noise hits all of them;
the median of each is used.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from disent_core.data.registry import get_dataset
from disent_core.data.stream import TrainingStream
from disent_core.methods.base import MethodContext, OptimConfig
from disent_core.methods.beta_vae import BetaVAE, BetaVAEConfig
from disent_core.methods.losses import gaussian_kl_per_dim, reconstruction_loss
from disent_core.train import train

BATCH, LATENTS, WARMUP = 64, 10, 10


def trainer_images_per_sec(
    steps: int, threads: int | None, channels_last: bool, precision: str = "fp32"
) -> float:
    """Median images/s over train()'s report windows, the first (warm-up) window left out."""
    config = {
        "dataset": {"name": "dsprites_procedural"},
        "method": {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": LATENTS},
        "train": {"steps": steps + WARMUP, "batch_size": BATCH, "report_every": WARMUP,
                  "threads": threads, "channels_last": channels_last, "precision": precision},
    }
    result = train(config)
    return statistics.median(r.images_per_sec for r in result.reports[1:])


def bare_images_per_sec(steps: int, channels_last: bool) -> float:
    """A hand-written loop: encoder, sample, decoder, BCE + beta * KL, backward, Adam step."""
    dataset = get_dataset("dsprites_procedural")
    generator = torch.Generator().manual_seed(0)
    context = MethodContext(dataset.observation_shape, LATENTS, "bernoulli", len(dataset), generator)
    model = BetaVAE(BetaVAEConfig(beta=4), context)
    x = next(TrainingStream(dataset, BATCH, seed=0, prefetch=0)).float() / 255
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.vae_parameters(), lr=OptimConfig().lr)

    def step() -> None:
        mean, logvar = model.encoder(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator)
        kl = gaussian_kl_per_dim(mean, logvar).sum()
        loss = reconstruction_loss(model.decoder(z), x, "bernoulli") + 4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(WARMUP):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


def sampling_images_per_sec(batches: int = 200) -> float:
    """Images/s of the training stream alone (sampling factors, rendering, collating)."""
    stream = TrainingStream(get_dataset("dsprites_procedural"), BATCH, seed=0, prefetch=0)
    stream.batch(0)
    start = time.perf_counter()
    for i in range(batches):
        stream.batch(i)
    return batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, channels_last={args.channels_last}")
    trainer, bf16, bare = [], [], []
    for r in range(args.rounds):
        trainer.append(trainer_images_per_sec(args.steps, args.threads, args.channels_last))
        bf16.append(trainer_images_per_sec(args.steps, args.threads, args.channels_last, "bf16"))
        bare.append(bare_images_per_sec(args.steps, args.channels_last))
        print(f"round {r}: trainer {trainer[-1]:.0f} img/s, trainer bf16 {bf16[-1]:.0f} img/s, "
              f"bare {bare[-1]:.0f} img/s")
    sampling = sampling_images_per_sec()
    t, t16, b = statistics.median(trainer), statistics.median(bf16), statistics.median(bare)
    print(f"trainer_images_per_sec: {t:.0f}")
    print(f"trainer_bf16_images_per_sec: {t16:.0f}")
    print(f"bare_images_per_sec: {b:.0f}")
    print(f"sampling_images_per_sec: {sampling:.0f}")
    print(f"trainer_vs_bare: {t / b:.3f}")
    print(f"sampling_vs_training: {sampling / t:.1f}")
    print(f"trainer_bf16_vs_fp32: {t16 / t:.3f}")


if __name__ == "__main__":
    main()
