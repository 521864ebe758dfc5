"""Throughput of fused populations against one model and against k single-model processes.

    python bench/population_throughput.py [--quick] [--seconds 20] [--rounds 3] [--packing 1,2,4,8]
                                          [--members 1,2,4,8,16,32,64] [--base-channels 32]

On the device it runs on (CUDA when available, else the CPU) it measures images/s of

- one model: ``disent_core.train.train`` of beta-VAE, in this process;
- k single-model processes sharing the device (``multiprocessing`` with spawn), their images/s
  summed;
- fused populations of N members (``disent_core.population.train_population``), the members'
  images/s summed (N times the batch per step);

and prints ``packing_vs_single[k]: R`` and ``population_vs_single[N]: R`` (R = images/s over one
model's), and the memory per member: ``torch.cuda.max_memory_allocated`` divided by N on CUDA
(per process for packing); on the CPU the bytes of parameters, gradients and Adam's two moments of
one member (the part that grows with N; activations and data batches come on top).

Every run is timed the same way, with the trainers' own loops: after ``--warmup`` steps all runs of
a measurement start together (packed processes meet at a barrier), then train until ``--seconds``
have passed, reporting every ``--window`` steps; images/s is the images trained between the first
and the last report over the time between them. ``--rounds`` alternate all runs so that machine noise
hits them alike; the medians are printed, with the load average before and after. Each trainer
syncs the host once per step (its finiteness check); nothing else in a step waits for the device.
Data: procedural dSprites, batch 64, 10 latents, the default conv architecture (``--base-channels``
32), fp32.

Threads (CPU): one model and the populations run with ``--threads`` intra-op threads (default:
torch's, one per core), each of k packed processes with ``max(1, threads // k)``, so that every run
has the same cores. On a machine shared with other jobs, pass ``--threads 1``: OpenMP threads that
wait for cores taken by others slow a step down many times over.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from disent_core.population import train_population
from disent_core.train import Report, train

BATCH, LATENTS = 64, 10


class _Stop(Exception):
    """Raised from a report callback when the measurement's time is up."""


def _config(seed: int, beta: float, steps: int, window: int, base_channels: int, threads: int | None) -> dict:
    return {
        "dataset": {"name": "dsprites_procedural"},
        "method": {"name": "beta_vae", "beta": beta},
        "model": {"latent_dim": LATENTS, "base_channels": base_channels},
        "train": {"steps": steps, "batch_size": BATCH, "seed": seed, "report_every": window,
                  "threads": threads},
    }


class _Clock:
    """Report callback: waits at ``start`` after the warm-up, then records (time, step) until time is up."""

    def __init__(self, warmup: int, seconds: float, start: Callable[[], None]) -> None:
        self.warmup, self.seconds, self.start = warmup, seconds, start
        self.marks: list[tuple[float, int]] = []
        self.deadline = float("inf")

    def __call__(self, report: Report) -> None:
        if report.step < self.warmup:
            return
        if not self.marks:
            self.start()
            self.deadline = time.perf_counter() + self.seconds
        self.marks.append((time.perf_counter(), report.step))
        if self.marks[-1][0] >= self.deadline:
            raise _Stop

    def steps_per_sec(self) -> float:
        (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
        return (s1 - s0) / (t1 - t0)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _reset_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _single(
    seed: int, args: argparse.Namespace, threads: int | None, start: Callable[[], None]
) -> dict[str, Any]:
    """One model trained with ``train`` for ``args.seconds`` after the warm-up; its images/s."""
    _reset_memory()
    clock = _Clock(args.warmup, args.seconds, start)
    config = _config(seed, 4.0, 10**9, args.window, args.base_channels, threads)
    try:
        train(config, on_report=clock)
    except _Stop:
        pass
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    return {"images_per_sec": clock.steps_per_sec() * BATCH, "peak": peak}


def _packed_worker(seed: int, args: argparse.Namespace, threads: int | None, barrier: Any, out: Any) -> None:
    out.put(_single(seed, args, threads, lambda: barrier.wait()))


def packed(k: int, args: argparse.Namespace) -> dict[str, Any]:
    """k spawned single-model trainings started together; their images/s summed."""
    context = mp.get_context("spawn")
    barrier, out = context.Barrier(k), context.Queue()
    threads = max(1, args.threads // k) if _device().type == "cpu" else None
    processes = [context.Process(target=_packed_worker, args=(seed, args, threads, barrier, out))
                 for seed in range(k)]
    for p in processes:
        p.start()
    results = [out.get() for _ in processes]
    for p in processes:
        p.join()
    peaks = [r["peak"] for r in results if r["peak"] is not None]
    total = sum(r["images_per_sec"] for r in results)
    return {"images_per_sec": total, "peak": max(peaks) if peaks else None}


def population(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """A fused population of n beta-VAEs (betas 1..8, seeds 0..n-1); the members' images/s summed."""
    _reset_memory()
    clock = _Clock(args.warmup, args.seconds, lambda: None)
    configs = [_config(seed, 1.0 + seed % 8, 10**9, args.window, args.base_channels, args.threads)
               for seed in range(n)]
    holder: dict[str, Any] = {}

    def on_report(index: int, report: Report) -> None:
        if index == 0:
            holder["method"] = report.method
            clock(report)

    try:
        train_population(configs, on_report)
    except _Stop:
        pass
    member_bytes = 16 * sum(p.numel() for p in holder["method"].parameters())  # fp32 weight, grad, 2 moments
    if torch.cuda.is_available():
        memory = (torch.cuda.max_memory_allocated() / n, "torch.cuda.max_memory_allocated / N")
    else:
        memory = (member_bytes, "parameters + gradients + Adam moments of one member, fp32")
    return {"images_per_sec": clock.steps_per_sec() * BATCH * n, "memory": memory}


def _mib(count: float) -> str:
    return f"{count / 2**20:.1f} MiB"


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one short round, k in 1,2 and N in 1,2,4,8: a smoke run on a laptop CPU")
    parser.add_argument("--seconds", type=float, help="measured time per run (default 20, quick 5)")
    parser.add_argument("--warmup", type=int, help="steps before timing (default 10, quick 3)")
    parser.add_argument("--window", type=int, help="steps per report (default 5, quick 1)")
    parser.add_argument("--rounds", type=int,
                        help="rounds of every measurement, medians printed (default 3, quick 1)")
    parser.add_argument("--packing", type=_ints, help="process counts k (default 1,2,4,8)")
    parser.add_argument("--members", type=_ints, help="population sizes N (default 1,2,4,8,16,32,64)")
    parser.add_argument("--base-channels", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="CPU intra-op threads of every run (default: torch's); k processes share them")
    args = parser.parse_args()
    defaults = {"seconds": (20.0, 5.0), "warmup": (10, 3), "window": (5, 1), "rounds": (3, 1),
                "packing": ([1, 2, 4, 8], [1, 2]), "members": ([1, 2, 4, 8, 16, 32, 64], [1, 2, 4, 8])}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def main() -> None:
    args = _arguments()
    device = _device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {os.cpu_count()} cores"
    print(f"torch {torch.__version__}, device {name}, {args.threads} threads; beta_vae, "
          f"procedural dSprites, batch {BATCH}, latent {LATENTS}, base_channels {args.base_channels}, fp32; "
          f"{args.rounds} round(s) of {args.seconds:g} s per run after {args.warmup} warm-up steps")
    print(f"load_average_before: {os.getloadavg()[0]:.2f}")
    singles: list[float] = []
    packing: dict[int, list[float]] = {k: [] for k in args.packing}
    populations: dict[int, list[float]] = {n: [] for n in args.members}
    memory: dict[str, str] = {}
    for _ in range(args.rounds):  # rounds alternate every run, so that machine noise hits them all
        single = _single(0, args, args.threads, lambda: None)
        singles.append(single["images_per_sec"])
        if single["peak"] is not None:
            memory["single"] = f"{_mib(single['peak'])} (torch.cuda.max_memory_allocated)"
        for k in args.packing:
            run = packed(k, args)
            packing[k].append(run["images_per_sec"])
            if run["peak"] is not None:
                memory[f"packing[{k}]"] = f"{_mib(run['peak'])} per process (torch.cuda.max_memory_allocated)"
        for n in args.members:
            run = population(n, args)
            populations[n].append(run["images_per_sec"])
            value, what = run["memory"]
            memory[f"population[{n}]"] = f"{_mib(value)} per member ({what})"
    base = statistics.median(singles)
    print(f"single_images_per_sec: {base:.0f}")
    for k, values in packing.items():
        print(f"packing_images_per_sec[{k}]: {statistics.median(values):.0f}")
        print(f"packing_vs_single[{k}]: {statistics.median(values) / base:.2f}")
    for n, values in populations.items():
        print(f"population_images_per_sec[{n}]: {statistics.median(values):.0f}")
        print(f"population_vs_single[{n}]: {statistics.median(values) / base:.2f}")
    for what, value in memory.items():
        print(f"memory {what}: {value}")
    print(f"load_average_after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
