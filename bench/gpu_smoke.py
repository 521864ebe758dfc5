"""GPU smoke test: every method trains and is scored on the device, a shared-GPU study, a population.

    python bench/gpu_smoke.py                        # on one GPU: under 5 minutes
    python bench/gpu_smoke.py --device cpu --quick   # a short CPU run: 20 steps, small networks
    python bench/gpu_smoke.py [--device auto|cuda|cpu] [--steps 200] [--methods beta_vae ...]
                              [--precisions fp32 bf16 fp16] [--no-study] [--no-population]

Checks, each independent of the others (an exception in one is a ``FAIL`` line with the first line
of its error; the script goes on):

1. for every registered method (``disent_core.methods.registry.METHODS``, or ``--methods``) and every
   ``train.precision`` (fp32, bf16, fp16, or ``--precisions``): ``disent_core.train.train`` on the
   device for ``--steps`` steps on procedural dSprites, then ``disent_core.metrics.evaluate`` of the
   trained method there (protocol ``fast``, MIG). fp16 on the CPU is very slow, so it is skipped there
   unless ``--precisions`` asks for it;
2. a 4-trial study (a grid of 2 betas x 2 seeds) through ``python -m studies.cli run`` with
   ``resources.gpu: 0.25`` on CUDA (4 trials share one GPU, ``search.max_concurrent: 4``) and
   ``train.device: cuda``, so a trial that was not given a GPU fails; on the CPU ``gpu: 0`` and 2 at a
   time. It passes when the command exits 0 and ``results.parquet`` holds 4 completed rows, trained on
   the study's device (``train_config.train.device``);
3. the same study with ``resources.population: 4``: its 4 trials train as one fused population in
   one Tune trial on a quarter GPU (``studies/orchestration/population_trial.py``); skipped on the
   CPU, where populations are not the default (``auto`` is 1) and the study test suite covers them;
4. a fused population (``disent_core.population.train_population``) of 4 beta-VAE members trains
   ``--steps`` steps on the device, every member's parameters there.

It prints one line per check, e.g.
``ok    beta_vae      fp32   200 steps   1234 img/s  loss 95.1  mig 0.05  (12.3 s)``, or
``FAIL  beta_vae      fp32   : <error>`` or ``skip  beta_vae      fp16   : skipped: fp16 on CPU``, and
finally ``gpu_smoke: N passed, M failed, K skipped``. Exit status: 0 when nothing failed, 1 when a
check failed, 2 for bad arguments (an unknown method or precision). Nothing touches CUDA at import
time; ``--device auto`` (the default) picks CUDA when torch sees a GPU, else the CPU.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from disent_core.methods.registry import METHODS
from disent_core.metrics import evaluate
from disent_core.population import train_population
from disent_core.train import train

PRECISIONS = ("fp32", "bf16", "fp16")
SCORE = "mig.discrete_mig"
"""The score each training check reports (the fast protocol's MIG: seconds on either device)."""
STUDY_TIMEOUT_S = 600
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    """What every check trains: the device name, steps, batch and network sizes."""

    device: str
    steps: int
    batch_size: int
    latent_dim: int
    base_channels: int
    study_steps: int


@dataclass
class Outcome:
    """One check's result: ``ok``, ``FAIL`` or ``skip``, with its line's text."""

    status: str
    label: str
    detail: str


class Skipped(Exception):
    """Raised by a check that does not apply on this device; its message says why."""


def resolve_device(choice: str) -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu`` and ``cuda`` as given.

    Args:
        choice: ``auto``, ``cuda`` or ``cpu``.

    Returns:
        The device every check trains on (``cuda`` even when there is none: the checks then fail
        with the trainer's own error).
    """
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def method_options(name: str, steps: int) -> dict[str, Any]:
    """The method section for ``name``: its defaults, staged methods with stages that fit ``steps``."""
    options: dict[str, Any] = {"name": name}
    if name == "deft":
        options.update(stage_steps=max(1, steps // 4), group_size=2)
    if name == "cascade_vae_c":
        options.update(stage_steps=max(1, steps // 4))
    return options


def train_config(method: dict[str, Any], settings: Settings, precision: str, seed: int = 0) -> dict[str, Any]:
    """A training config on procedural dSprites for ``settings.steps`` steps on ``settings.device``."""
    return {
        "dataset": {"name": "dsprites_procedural"},
        "method": method,
        "model": {"latent_dim": settings.latent_dim, "base_channels": settings.base_channels},
        "train": {"steps": settings.steps, "batch_size": settings.batch_size, "seed": seed,
                  "report_every": settings.steps, "precision": precision, "device": settings.device},
    }


def _device_type(module: torch.nn.Module) -> set[str]:
    return {p.device.type for p in module.parameters()} | {b.device.type for b in module.buffers()}


def _check_on_device(module: torch.nn.Module, device: str, what: str) -> None:
    found = _device_type(module)
    if found != {device}:
        raise RuntimeError(f"{what} has tensors on {sorted(found)}, expected only {device}")


def check_method(name: str, precision: str, settings: Settings, asked_fp16: bool) -> str:
    """Train ``name`` in ``precision`` on the device, then score it there.

    Args:
        name: a registered method.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        settings: device, steps and sizes.
        asked_fp16: ``--precisions`` named fp16 (else fp16 on the CPU is skipped).

    Returns:
        The line's detail: steps, images/s, the final loss, the score.

    Raises:
        Skipped: fp16 on the CPU, not asked for.
        Exception: whatever training or evaluation raised, or tensors off the device.
    """
    if precision == "fp16" and settings.device == "cpu" and not asked_fp16:
        raise Skipped("skipped: fp16 on CPU")
    result = train(train_config(method_options(name, settings.steps), settings, precision))
    _check_on_device(result.method, settings.device, name)
    report = result.last_report
    if report is None or result.step != settings.steps:
        raise RuntimeError(f"trained {result.step} of {settings.steps} steps")
    loss = report.terms["loss"]
    if not math.isfinite(loss):
        raise RuntimeError(f"final loss is {loss}")
    scores = evaluate(result.method, result.dataset, protocol="fast", metrics=["mig"],
                      device=settings.device, n_jobs=1)
    score = scores[SCORE]
    if not 0.0 <= score <= 1.0:
        raise RuntimeError(f"{SCORE} {score} is outside [0, 1]")
    return (f"{result.step:4d} steps  {report.images_per_sec:6.0f} img/s  loss {loss:7.1f}  "
            f"mig {score:.3f}")


def study_spec(settings: Settings, population: int = 1) -> dict[str, Any]:
    """A 4-trial study (2 betas x 2 seeds) with a quarter GPU per Tune trial on CUDA, none on the CPU,
    ``population`` trials per Tune trial."""
    on_gpu = settings.device == "cuda"
    return {
        "name": "gpu_smoke",
        "dataset": {"name": "dsprites_procedural"},
        "model": {"latent_dim": settings.latent_dim, "base_channels": settings.base_channels},
        "train": {"steps": settings.study_steps, "batch_size": settings.batch_size,
                  "report_every": settings.study_steps, "device": settings.device},
        "methods": {"beta_vae": {"beta": {"search": "grid", "values": [1, 4]}}},
        "seeds": [0, 1],
        "evaluation": {"protocol": "fast", "metrics": ["mig"]},
        "objective": {"metric": SCORE, "mode": "max"},
        "search": {"algorithm": "grid", "max_concurrent": 4 if on_gpu else 2},
        "resources": {"cpu": 1, "gpu": 0.25 if on_gpu else 0, "population": population},
    }


def check_study(settings: Settings, population: int = 1) -> str:
    """Run the 4-trial study through the CLI in a subprocess and read its results table.

    Args:
        settings: the run's settings.
        population: trials per Tune trial (``resources.population``).

    Returns:
        The line's detail: trials completed, the device they trained on, the best score.

    Raises:
        Skipped: a population above 1 on the CPU.
        RuntimeError: the command failed, or the table lacks 4 completed trials on the device (in
            one population, for a population of 4).
    """
    import pandas as pd

    if population > 1 and settings.device == "cpu":
        raise Skipped("skipped: populations on the CPU are covered by the study tests")
    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        spec_path = Path(tmp) / "gpu_smoke.yaml"
        spec_path.write_text(yaml.safe_dump(study_spec(settings, population)))
        root = Path(tmp) / "runs"
        proc = subprocess.run(
            [sys.executable, "-m", "studies.cli", "run", str(spec_path), "--root", str(root), "--no-report",
             "--quiet"],
            capture_output=True, text=True, timeout=STUDY_TIMEOUT_S, cwd=REPO_ROOT,
        )
        if proc.returncode != 0:
            lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
            raise RuntimeError(f"studies.cli run exited {proc.returncode}: "
                               f"{lines[-1] if lines else 'no output'}")
        table = pd.read_parquet(root / "gpu_smoke" / "results.parquet")
    completed = table[table["status"] == "completed"]
    if len(table) != 4 or len(completed) != 4:
        raise RuntimeError(
            f"results.parquet has {len(completed)} completed of {len(table)} rows, expected 4 of 4"
        )
    devices = sorted(set(completed["train_config.train.device"].astype(str)))
    if devices != [settings.device]:
        raise RuntimeError(f"trials trained on {devices}, expected {settings.device}")
    packed = completed["population"].dropna().nunique() if "population" in completed else 0
    if population > 1 and (packed != 1 or completed["population"].isna().any()):
        raise RuntimeError(f"the 4 trials trained in {packed} populations, expected all in one")
    best = completed[f"evaluation_results.{SCORE}"].max()
    gpu = study_spec(settings)["resources"]["gpu"]
    where = f"in {packed} population(s) on gpu {gpu:g}" if population > 1 else f"gpu {gpu:g} each"
    return f"4 trials completed  {where}  device {devices[0]}  best mig {best:.3f}"


def check_population(settings: Settings) -> str:
    """Train a fused population of 4 beta-VAE members (betas 1, 2, 4, 8) on the device.

    Returns:
        The line's detail: members, steps, images/s summed over members, the members' final losses.

    Raises:
        RuntimeError: a member failed, did not finish, or has tensors off the device.
    """
    configs = [train_config({"name": "beta_vae", "beta": beta}, settings, "fp32", seed=i)
               for i, beta in enumerate((1, 2, 4, 8))]
    start = time.perf_counter()
    result = train_population(configs)
    seconds = time.perf_counter() - start
    losses = []
    for member in result.members:
        if member.failure is not None:
            raise RuntimeError(f"member {member.index} failed: {member.failure}")
        if member.step != settings.steps or member.last_report is None:
            raise RuntimeError(f"member {member.index} trained {member.step} of {settings.steps} steps")
        _check_on_device(member.method, settings.device, f"member {member.index}")
        losses.append(member.last_report.terms["loss"])
    images = 4 * settings.steps * settings.batch_size / seconds
    return (f"4 members  {settings.steps:4d} steps  {images:6.0f} img/s  "
            f"loss {' '.join(f'{v:.1f}' for v in losses)}")


def run_check(label: str, check: Callable[[], str]) -> Outcome:
    """Run one check, print its line and return its outcome; never raises (but for KeyboardInterrupt)."""
    start = time.perf_counter()
    try:
        detail = check()
        outcome = Outcome("ok", label, f"{detail}  ({time.perf_counter() - start:.1f} s)")
    except Skipped as exc:
        outcome = Outcome("skip", label, f": {exc}")
    except Exception as exc:  # every failure is a FAIL line; the next check runs
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else ""
        seconds = time.perf_counter() - start
        outcome = Outcome("FAIL", label, f": {type(exc).__name__}: {first}  ({seconds:.1f} s)")
    print(f"{outcome.status:<5} {outcome.label}  {outcome.detail}", flush=True)
    return outcome


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; unknown methods or precisions exit 2 before any check runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto",
                        help="where to train and evaluate (auto: cuda when available, else cpu)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per check (default 200; 20 with --quick)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD", default=None,
                        help="registered methods to train (default: all)")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None,
                        help="train.precision values (default: all three; on the CPU fp16 only when named)")
    parser.add_argument("--quick", action="store_true",
                        help="a short CPU-sized run: 20 steps, batch 16, small networks")
    parser.add_argument("--no-study", action="store_true", help="skip the 4-trial study check")
    parser.add_argument("--no-population", action="store_true", help="skip the fused population check")
    args = parser.parse_args(argv)
    known = METHODS.names()
    unknown = [m for m in args.methods or [] if m not in known]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(known)}")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every selected check, print a line for each and the summary; 1 when any failed, else 0."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    steps = args.steps if args.steps is not None else (20 if args.quick else 200)
    settings = Settings(
        device=device, steps=steps,
        batch_size=16 if args.quick else 64,
        latent_dim=10,
        base_channels=8 if args.quick else 32,
        study_steps=min(steps, 20 if args.quick else 100),
    )
    methods = args.methods or METHODS.names()
    precisions = args.precisions or list(PRECISIONS)
    asked_fp16 = args.precisions is not None and "fp16" in args.precisions
    cuda = torch.cuda.get_device_name() if device == "cuda" and torch.cuda.is_available() else ""
    print(f"gpu_smoke: device {device}{f' ({cuda})' if cuda else ''}, torch {torch.__version__}, "
          f"{steps} steps, batch {settings.batch_size}", flush=True)
    width = max(len(m) for m in [*methods, "population"])
    outcomes = [
        run_check(f"{name:<{width}}  {precision:<4}",
                  lambda name=name, precision=precision: check_method(name, precision, settings, asked_fp16))
        for name in methods for precision in precisions
    ]
    if not args.no_study:
        outcomes.append(run_check(f"{'study':<{width}}  {device:<4}", lambda: check_study(settings)))
        outcomes.append(run_check(f"{'pop. study':<{width}}  {device:<4}", lambda: check_study(settings, 4)))
    if not args.no_population:
        outcomes.append(run_check(f"{'population':<{width}}  fp32", lambda: check_population(settings)))
    counts = {status: sum(o.status == status for o in outcomes) for status in ("ok", "FAIL", "skip")}
    print(f"gpu_smoke: {counts['ok']} passed, {counts['FAIL']} failed, {counts['skip']} skipped", flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
