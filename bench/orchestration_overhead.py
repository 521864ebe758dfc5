"""What does orchestration cost? The same N trainings, directly in one process and as a study.

Both sides run N beta-VAE trainings of the same length on procedural dSprites, each followed by the
same end-of-training work (the evaluation of the spec and the figures), one after another with all
cores per training: directly in this process, then through ``disent-study run`` (embedded Ray,
Optuna grid over the N betas, MLflow tracking, Tune checkpoints) with one trial at a time and
``resources.cpu`` = all cores. The difference is what Ray start-up, actor start, checkpoint
persistence and tracking add:

    per_trial_overhead_s: (study wall - direct wall) / N
    orchestration_efficiency: direct wall / study wall      (target >= 0.9 for 60 s trials on 2 cores)

The trial length is calibrated first (``--trial-seconds``, default 60). ``--quick`` runs 2 trials of
about 10 s as a smoke test.

    python bench/orchestration_overhead.py [--trials 4] [--trial-seconds 60] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from disent_core.analysis.figures import kl_per_dim_plot, latent_traversal_grid, reconstruction_grid
from disent_core.metrics import evaluate
from disent_core.train import train
from studies.spec import validate_spec
from studies.spec.space import SearchSpace

CPUS = os.cpu_count() or 1


def make_spec(name: str, trials: int, steps: int) -> dict:
    betas = [float(2**i) for i in range(trials)]
    return {
        "name": name,
        "dataset": {"name": "dsprites_procedural"},
        "model": {"latent_dim": 10},
        "train": {"steps": steps, "batch_size": 64, "report_every": max(steps // 10, 1),
                  "checkpoint_every": max(steps // 2, 1)},
        "methods": {"beta_vae": {"beta": {"search": "grid", "values": betas}}},
        "evaluation": {"protocol": "fast", "metrics": ["mig"]},
        "objective": {"metric": "mig.discrete_mig", "mode": "max"},
        "search": {"algorithm": "grid", "max_concurrent": 1},
        "resources": {"cpu": CPUS},
    }


def calibrate(seconds: float) -> int:
    """Steps for a training of about ``seconds`` at batch 64 with every core: two probe trainings
    of different lengths give the cost per step and the fixed cost (model, data, first steps)."""
    elapsed = {}
    for steps in (40, 120):
        probe = validate_spec(make_spec("probe", 1, steps))
        config = SearchSpace(probe).train_config({"method": "beta_vae", "beta_vae.beta": 1.0}, 0)
        start = time.perf_counter()
        train(config)
        elapsed[steps] = time.perf_counter() - start
    per_step = (elapsed[120] - elapsed[40]) / 80
    fixed = max(elapsed[40] - 40 * per_step, 0.0)
    return max(int((seconds - fixed) / per_step), 20)


def run_direct(spec_data: dict, workdir: Path) -> float:
    """Each trial's training, evaluation and figures, one after another in this process."""
    spec = validate_spec(spec_data)
    space = SearchSpace(spec)
    start = time.perf_counter()
    for i, point in enumerate(space.grid):
        out = workdir / f"direct_{i}"
        result = train(space.train_config(point, spec.seeds[0]), checkpoint_dir=out)
        evaluate(result.method, result.dataset, protocol=spec.evaluation.protocol, seed=0,
                 metrics=spec.evaluation.metrics, n_jobs=CPUS)
        latent_traversal_grid(result.method, result.dataset, out / "latent_traversals.png")
        reconstruction_grid(result.method, result.dataset, out / "reconstructions.png")
        kl_per_dim_plot(result.last_report.latent_information, out / "kl_per_dim.png")
    return time.perf_counter() - start


def run_study(spec_data: dict, workdir: Path) -> float:
    """The whole ``disent-study run`` command, timed from outside like a user would."""
    path = workdir / f"{spec_data['name']}.yaml"
    path.write_text(yaml.safe_dump(spec_data))
    start = time.perf_counter()
    command = [sys.executable, "-m", "studies.cli", "run", str(path), "--root", str(workdir / "runs")]
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the study failed:\n{done.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--trial-seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="2 trials of about 10 s")
    args = parser.parse_args()
    trials, seconds = (2, 10.0) if args.quick else (args.trials, args.trial_seconds)
    torch.set_num_threads(CPUS)
    steps = calibrate(seconds)
    print(f"{trials} trials of {steps} steps (about {seconds:.0f} s of training each), "
          f"{CPUS} cores per trial")
    with tempfile.TemporaryDirectory(prefix="orchestration-bench-") as tmp:
        workdir = Path(tmp)
        direct = run_direct(make_spec("direct", trials, steps), workdir)
        print(f"direct: {direct:.1f} s ({direct / trials:.1f} s per trial)", flush=True)
        study = run_study(make_spec("bench", trials, steps), workdir)
        print(f"study:  {study:.1f} s ({study / trials:.1f} s per trial)")
    print(f"per_trial_overhead_s: {(study - direct) / trials:.2f}")
    print(f"orchestration_efficiency: {direct / study:.3f}")


if __name__ == "__main__":
    main()
