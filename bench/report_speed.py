"""How long does ``disent-study report`` take on a study of a few hundred trials? Goal: under 60 s.

Synthesises a study the size of a real sweep (default 3 methods x 20 configurations x 5 seeds =
300 trials, plus a few failed and running ones) with the columns a real study has: every trial's
flattened training config from the spec's own ``SearchSpace`` (``train_config.*``), the searched
values as Optuna proposes them (``search.*``: a log-scale beta, C_max with a categorical gamma,
DeVAE's betas lists with s), every key of MIG, DCI, FactorVAE, SAP and reconstruction
(``evaluation_results.*``) with structure in the scores and seed noise, and final losses. Then it
times the whole report as the command builds it (analysis with 1000 bootstrap resamples, figures as
PNG and SVG, the HTML page and the results table), after one untimed warm-up on a small study so
that imports and font caches are not counted:

    report_seconds[300_trials]: S
    report_time_vs_goal: S / 60      (below 1 meets the goal)

    python bench/report_speed.py [--configs 20] [--seeds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from studies.report.build import write_report
from studies.report.results import StudyResults
from studies.spec import StudySpec, validate_spec
from studies.spec.space import METHOD, SearchSpace

GOAL_S = 60.0


def bench_spec(configs: int, seeds: int) -> StudySpec:
    return validate_spec({
        "name": "report_speed",
        "description": "synthetic study for bench/report_speed.py",
        "dataset": {"name": "dsprites_procedural"},
        "model": {"latent_dim": 10},
        "train": {"steps": 30000, "batch_size": 64, "report_every": 1000,
                  "optimizer": {"lr": {"search": "log_float", "low": 1e-4, "high": 1e-3}}},
        "methods": {
            "beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 64}},
            "annealed_vae": {"c_max": {"search": "float", "low": 5, "high": 50},
                             "gamma": {"search": "categorical", "choices": [100, 1000]}},
            "devae": {"betas": {"search": "categorical",
                                "choices": [[1, 10], [1, 10, 40], [1, 10, 20, 40, 80]]},
                      "scale": {"search": "float", "low": 0.3, "high": 1.0}},
        },
        "seeds": list(range(seeds)),
        "evaluation": {"protocol": "fast", "metrics": ["mig", "dci", "factor_vae", "sap", "reconstruction"]},
        "objective": {"metric": "mig.discrete_mig", "mode": "max"},
        "search": {"algorithm": "random", "num_trials": 3 * configs, "seed": 0},
        "report": {"claims": ["devae tolerance(mig) > beta_vae tolerance(mig)",
                              "annealed_vae best(dci) > beta_vae best(dci)"]},
    })


def _assignments(spec: StudySpec, per_method: int) -> list[dict[str, Any]]:
    """``per_method`` random configurations of each method, as Optuna proposes them."""
    space = SearchSpace(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    found: dict[str, list[dict[str, Any]]] = {m: [] for m in spec.methods}
    while any(len(v) < per_method for v in found.values()):
        trial = study.ask()
        returned = space.define_by_run(trial)
        assignment = {**trial.params, **returned}
        if len(found[assignment[METHOD]]) < per_method:
            found[assignment[METHOD]].append(assignment)
    return [a for method in spec.methods for a in found[method]]


def _quality(assignment: dict[str, Any]) -> float:
    """A disentanglement level in [0, 1] with the shape papers report: best at moderate pressure."""
    method = assignment[METHOD]
    lr = 0.1 * math.log10(assignment["train.optimizer.lr"] / 1e-4)
    if method == "beta_vae":
        return math.exp(-((math.log(assignment["beta_vae.beta"]) - math.log(8)) ** 2) / 1.5) - lr
    if method == "annealed_vae":
        return 0.8 * math.exp(-((assignment["annealed_vae.c_max"] - 20) / 15) ** 2) - lr
    insufficient = assignment["devae.betas"] == "[1, 10]"
    return 0.9 - 0.3 * insufficient - 0.2 * abs(assignment["devae.scale"] - 1) - lr


def synthetic_trials(spec: StudySpec, per_method: int) -> pd.DataFrame:
    """One row per trial in the results table's layout (a few failed and running ones included)."""
    space = SearchSpace(spec)
    rng = np.random.default_rng(0)
    rows = []
    for number, assignment in enumerate(_assignments(spec, per_method)):
        level = _quality(assignment)
        for seed in spec.seeds:
            config = space.train_config(assignment, seed)
            q = float(np.clip(level + rng.normal(0, 0.08), 0, 1))
            row: dict[str, Any] = {
                "trial_id": f"{number:04d}_{seed}", "status": "completed", "error": None,
                "method": assignment[METHOD], "seed": seed, "step": spec.steps, "model_num": None,
            }
            row.update({f"train_config.{k}": str(v) if isinstance(v, list) else v
                        for k, v in config.flat_params().items()})
            row.update({f"search.{k}": v for k, v in assignment.items() if k != METHOD})
            recon = 30 + 60 * q + rng.normal(0, 5)
            scores = {
                "mig.discrete_mig": 0.45 * q, "dci.disentanglement": 0.7 * q, "dci.completeness": 0.6 * q,
                "dci.informativeness_train": 0.8, "dci.informativeness_test": 0.75,
                "factor_vae.train_accuracy": 0.5 + 0.4 * q, "factor_vae.eval_accuracy": 0.5 + 0.38 * q,
                "factor_vae.num_active_dims": 4 + round(4 * q), "sap.SAP_score": 0.1 * q,
                "reconstruction.reconstruction_error": recon, "reconstruction.kl": 25 - 10 * q,
                "reconstruction.num_active_latents": 4 + round(5 * q),
            }
            row.update({f"evaluation_results.{k}": v + rng.normal(0, 0.01) for k, v in scores.items()})
            row.update({"final.loss/recon": recon + 2, "final.loss/kl": 25 - 10 * q})
            rows.append(row)
    table = pd.DataFrame(rows)
    # a study is rarely clean: a few diverged and still running trials, left out and counted
    table.loc[table.index[:4], "status"] = "failed"
    table.loc[table.index[:4], "error"] = "Diverged: training diverged at step 2000"
    table.loc[table.index[:4], "step"] = 2000
    table.loc[table.index[4:6], "status"] = "running"
    return table


def results_of(spec: StudySpec, trials: pd.DataFrame) -> StudyResults:
    return StudyResults(spec, trials, "sqlite:///(synthetic)", "0", "(synthetic)", "synthetic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=20, help="configurations per method (default 20)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per configuration (default 5)")
    parser.add_argument("--keep", type=Path, default=None, help="write the report here instead of a temp dir")
    args = parser.parse_args()
    optuna.logging.set_verbosity(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        small = bench_spec(3, 3)
        write_report(results_of(small, synthetic_trials(small, 3)), Path(tmp) / "warmup")
        spec = bench_spec(args.configs, args.seeds)
        trials = synthetic_trials(spec, args.configs)
        completed = int((trials["status"] == "completed").sum())
        out = args.keep or Path(tmp) / "report"
        started = time.perf_counter()
        path = write_report(results_of(spec, trials), out)
        seconds = time.perf_counter() - started
        figures = len(list((out / "figures").glob("*.png")))
        print(f"{len(trials)} trials ({completed} completed), {len(spec.methods)} methods, "
              f"{figures} figures, {path.stat().st_size / 1e6:.1f} MB of HTML")
    label = f"{len(trials)}_trials"
    print(f"report_seconds[{label}]: {seconds:.1f}")
    print(f"report_time_vs_goal: {seconds / GOAL_S:.3f}   "
          f"(report seconds / {GOAL_S:.0f} s goal; below 1 meets it)")


if __name__ == "__main__":
    main()
