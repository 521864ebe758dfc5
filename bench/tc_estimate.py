"""The FactorVAE discriminator's total-correlation estimate on correlated Gaussians (DeVAE, Table 1).

    python bench/tc_estimate.py [--iterations 1000] [--repeats 1] [--batch 64] [--threads 1]
                                [--dims 10 100 1000] [--rhos 0.3 0.6 0.9] [--device cpu]

Data (DeVAE paper, Table 1): z = [z1 ; z2] with z1 ~ N(0, I_{D/2}) and z2 = rho * z1 +
sqrt(1 - rho^2) * eps, so component i of one half has correlation rho with component i of the other
and nothing else is correlated. True TC = 0.5 * (sum_i log Sigma_ii - log det Sigma)
= -(D / 4) * log(1 - rho^2), computed here from the covariance matrix with numpy.

Estimator: the FactorVAE discriminator (``FactorDiscriminator``, MLP D -> 1000 x 6 -> 2) trained
like FactorVAE's (``factor_vae``: Adam lr 1e-4, betas (0.5, 0.9); real = a batch of z, fake =
``permute_dims`` of that batch; loss -0.5 mean log p_real - 0.5 mean log p_fake with
``clipped_log_probs``). After training, TC-hat = mean(logit_real - logit_fake) over ``--eval``
fresh samples of z.

The paper trains 2000 iterations and averages 10 repeats (batch size not stated). The defaults here
(1000 iterations, 1 repeat, batch 64) keep the nine settings under 15 minutes on a busy 2-core CPU;
``--iterations 2000 --repeats 10`` is the paper's protocol. The header line prints what was run.
Randomness: one torch.Generator per (setting, repeat), seeded from --seed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from disent_core.methods.factor_vae import FactorVAEConfig, clipped_log_probs, permute_dims
from disent_core.models.discriminator import FactorDiscriminator

# DeVAE Table 1: (D, rho) -> (estimated TC, true TC)
PAPER = {
    (10, 0.3): (0.23, 0.24),
    (10, 0.6): (1.08, 1.12),
    (10, 0.9): (4.14, 4.15),
    (100, 0.3): (2.17, 2.36),
    (100, 0.6): (10.27, 11.16),
    (100, 0.9): (23.39, 41.52),
    (1000, 0.3): (8.62, 23.58),
    (1000, 0.6): (17.40, 111.57),
    (1000, 0.9): (22.47, 415.18),
}


def true_tc(dim: int, rho: float) -> float:
    """Closed-form TC of the Gaussian: 0.5 * (sum log diag(Sigma) - log det Sigma)."""
    half = dim // 2
    eye = np.eye(half)
    cov = np.block([[eye, rho * eye], [rho * eye, eye]])
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    tc = 0.5 * (np.log(np.diag(cov)).sum() - logdet)
    assert math.isclose(tc, -dim / 4 * math.log(1 - rho**2), rel_tol=1e-9)
    return float(tc)


def sample(n: int, dim: int, rho: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """n draws of [z1 ; rho * z1 + sqrt(1 - rho^2) * eps]."""
    z1 = torch.randn(n, dim // 2, generator=generator, device=device)
    eps = torch.randn(n, dim // 2, generator=generator, device=device)
    return torch.cat([z1, rho * z1 + math.sqrt(1 - rho**2) * eps], dim=1)


def setting_seed(seed: int, dim: int, rho: float, repeat: int) -> int:
    """A distinct seed per (run seed, D, rho, repeat)."""
    return int(np.random.SeedSequence([seed, dim, round(rho * 1000), repeat]).generate_state(1)[0])


def estimate_tc(dim: int, rho: float, args: argparse.Namespace, seed: int) -> float:
    """Train a fresh discriminator for ``args.iterations`` steps and return its TC estimate."""
    device = torch.device(args.device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        discriminator = FactorDiscriminator(dim).to(device)
    defaults = FactorVAEConfig()
    adam = torch.optim.Adam(
        discriminator.parameters(), lr=defaults.discriminator_lr, betas=defaults.discriminator_betas
    )
    n = args.batch
    for _ in range(args.iterations):
        real = sample(n, dim, rho, generator, device)
        fake = permute_dims(real, generator)
        log_p = clipped_log_probs(discriminator(torch.cat([real, fake])))
        loss = -0.5 * log_p[:n, 0].mean() - 0.5 * log_p[n:, 1].mean()
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
    with torch.no_grad():
        logits = discriminator(sample(args.eval, dim, rho, generator, device))
        return float((logits[:, 0] - logits[:, 1]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rhos", type=float, nargs="+", default=[0.3, 0.6, 0.9])
    parser.add_argument("--iterations", type=int, default=1000, help="paper: 2000")
    parser.add_argument("--repeats", type=int, default=1, help="paper: 10")
    parser.add_argument("--batch", type=int, default=64, help="real samples per iteration")
    parser.add_argument("--eval", type=int, default=4096, help="fresh samples for the final estimate")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"# {args.iterations} iterations (paper 2000), {args.repeats} repeat(s) (paper 10), batch "
        f"{args.batch}, {args.eval} eval samples, device {args.device}, {args.threads} thread(s)"
    )
    print(f"{'D':>5} {'rho':>4} | {'ours':>15} {'true':>8} {'err':>5} | "
          f"{'paper est':>9} {'paper true':>10} {'err':>5} | {'sec':>5}")
    start = time.perf_counter()
    for dim in args.dims:
        for rho in args.rhos:
            t0 = time.perf_counter()
            estimates = [estimate_tc(dim, rho, args, setting_seed(args.seed, dim, rho, r))
                         for r in range(args.repeats)]
            mean = statistics.fmean(estimates)
            ours = f"{mean:.2f}"
            if len(estimates) > 1:
                ours += f" ± {statistics.stdev(estimates):.2f}"
            truth = true_tc(dim, rho)
            paper_est, paper_true = PAPER.get((dim, rho), (math.nan, math.nan))
            print(
                f"{dim:>5} {rho:>4} | {ours:>15} {truth:8.2f} {abs(mean - truth) / truth:5.2f} | "
                f"{paper_est:9.2f} {paper_true:10.2f} {abs(paper_est - paper_true) / paper_true:5.2f} | "
                f"{time.perf_counter() - t0:5.0f}",
                flush=True,
            )
    print(f"# total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
