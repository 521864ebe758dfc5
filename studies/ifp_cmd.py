"""``disent-study ifp --dataset NAME``: DEFT's annealing test, the per-factor information freezing
points (IFP), a plot of KL against beta, and proposed DEFT beta pieces.

The defaults are a quick demonstration (200 steps, 2 seeds, batch 16, lr 3e-3: a couple of
minutes on 2 CPU cores); their IFPs are rough and many factors do not freeze at all in so few
steps. The authors' settings are in ``EPILOG`` and in ``disent_core.analysis.annealing``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from disent_core.analysis.annealing import (
    AnnealingConfig,
    AnnealingResult,
    AnnealingRun,
    BetaProposal,
    annealing_test,
    propose_beta_pieces,
    smooth,
)
from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.registry import get_dataset, get_entry
from disent_core.errors import ConfigError, DisentError
from studies.overrides import apply_set, parse_set

PLOT_NAME = "ifp_kl_vs_beta.png"
RESULTS_NAME = "ifp_results.json"
CURVES_NAME = "ifp_curves.npz"
QUICK = {"steps": 200, "seeds": 2, "batch_size": 16, "lr": 3e-3}

EPILOG = """\
The defaults are a quick demonstration (a couple of minutes on 2 CPU cores): 200 steps are far
too few for most factors to freeze, so expect rough IFPs and "no IFP" rows.

Realistic settings (reference/methods.md section 3.3; add --device cuda on a GPU; dsprites_full
needs `disent-study datasets prepare dsprites_full`, or --option source=procedural offline):

  2022, exponential (examples/IFP.py): beta(t) = 70 exp(-15 t / 8000) + 1, 1 latent, batch 64
    disent-study ifp --dataset dsprites_full --schedule exponential --steps 8000 --seeds 10 \\
        --batch-size 64 --lr 1e-4 --latent-dim 1
  2021, linear (bin/dlib_ICP): beta(t) = max((1 - t / 70000) * 80, 1), 10 latents, batch 256
    disent-study ifp --dataset dsprites_full --schedule linear --steps 70000 --seeds 10 \\
        --batch-size 256 --lr 5e-4 --latent-dim 10

Check the readout's robustness with --epsilon 0.05 / 0.1 / 0.2 and --gamma 10 / 15.
Dataset options go through --option, e.g. --option sizes=[3,6,10,8,8] for dsprites_procedural.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="registered dataset name")
    parser.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, value parsed as YAML (repeatable)")
    parser.add_argument("--factors", default=None,
                        help="comma-separated factor names to test (default: every latent factor)")
    parser.add_argument("--schedule", choices=("exponential", "linear"), default="exponential",
                        help="beta decay: 2022 exponential (default) or 2021 linear")
    parser.add_argument("--steps", type=int, default=QUICK["steps"],
                        help=f"steps per run, also the decay's time scale (default {QUICK['steps']})")
    parser.add_argument("--seeds", type=int, default=QUICK["seeds"],
                        help=f"reference vectors f* per factor (default {QUICK['seeds']})")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST .. FIRST+K-1")
    parser.add_argument("--batch-size", type=int, default=QUICK["batch_size"],
                        help=f"default {QUICK['batch_size']}")
    parser.add_argument("--lr", type=float, default=QUICK["lr"], help=f"Adam lr (default {QUICK['lr']})")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latents (default: 1 exponential, 10 linear)")
    parser.add_argument("--beta-start", type=float, default=None,
                        help="beta_max (default 70, exponential) or beta_h (default 80, linear)")
    parser.add_argument("--gamma", type=float, default=None, help="exponential decay rate (default 15)")
    parser.add_argument("--epsilon", type=float, default=0.1, help="KL threshold in nats (default 0.1)")
    parser.add_argument("--smoothing", type=float, default=0.95,
                        help="EMA weight of the past before thresholding (default 0.95)")
    parser.add_argument("--min-ratio", type=float, default=1.25,
                        help="IFP ranges closer than this ratio share a beta piece (default 1.25)")
    parser.add_argument("--final-beta", type=float, default=1.0, help="last beta piece (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default ./ifp-DATASET)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def _load_dataset(name: str, assignments: list[str]) -> GroundTruthDataset:
    entry = get_entry(name)
    options = apply_set({}, parse_set(assignments))
    try:
        return get_dataset(entry.name, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"dataset {entry.name!r} rejects options {options}: {exc}") from None


def _factor_indices(dataset: GroundTruthDataset, names: str | None) -> list[int]:
    if names is None:
        return list(range(dataset.num_factors))
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in dataset.factor_names]
    if unknown or not wanted:
        raise ConfigError(
            f"unknown factor(s) {unknown or names!r}; {dataset.name} has {', '.join(dataset.factor_names)}"
        )
    return [dataset.factor_names.index(n) for n in wanted]


def _config(args: argparse.Namespace) -> AnnealingConfig:
    overrides: dict[str, Any] = {
        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "epsilon": args.epsilon, "smoothing": args.smoothing,
    }
    for key in ("latent_dim", "beta_start", "gamma"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        return AnnealingConfig.preset(args.schedule, **overrides)
    except ValueError as exc:
        raise ConfigError(f"invalid annealing settings: {exc}") from None


def describe(config: AnnealingConfig) -> str:
    """The schedule and settings in one line."""
    if config.schedule == "linear":
        beta = f"max((1 - t/{config.steps}) * {config.beta_start:g}, {config.beta_end:g})"
    else:
        beta = f"{config.beta_start:g} exp(-{config.gamma:g} t/{config.steps}) + {config.beta_end:g}"
    return (
        f"beta(t) = {beta}; {config.steps} steps, batch {config.batch_size}, lr {config.lr:g}, "
        f"{config.latent_dim} latent(s), epsilon {config.epsilon:g}, smoothing {config.smoothing:g}"
    )


def format_table(result: AnnealingResult) -> str:
    """The per-factor IFP table (NaN: no run of that factor froze)."""
    names = ("mean", "std", "min", "median", "max")
    lines = [f"{'factor':<14} {'runs':>4} {'frozen':>6} " + " ".join(f"{n:>8}" for n in names)]
    for row in result.table():
        stats = " ".join(f"{row[n]:>8.2f}" for n in names)
        lines.append(f"{row['factor']:<14} {row['runs']:>4} {row['frozen']:>6} {stats}")
    return "\n".join(lines)


def format_proposal(proposal: BetaProposal) -> str:
    betas = ", ".join(f"{b:.3g}" for b in proposal.betas)
    clusters = " | ".join(
        f"{'+'.join(c)} [{lo:.3g}, {hi:.3g}]"
        for c, (lo, hi) in zip(proposal.clusters, proposal.ranges, strict=True)
    )
    text = f"proposed DEFT betas: [{betas}]\n  IFP clusters, high to low: {clusters or 'none'}"
    if proposal.unfrozen:
        text += (
            "\n  no IFP (never froze; longer runs or a higher --beta-start may help): "
            + ", ".join(proposal.unfrozen)
        )
    return text


def plot(result: AnnealingResult, path: Path) -> Path:
    """KL (smoothed total) against beta, one panel per factor, one line per seed; IFPs dashed."""
    config = result.config
    by_factor: dict[str, list[AnnealingRun]] = {}
    for run in result.runs:
        by_factor.setdefault(run.factor_name, []).append(run)
    columns = min(3, len(by_factor))
    rows = math.ceil(len(by_factor) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (name, runs) in zip(axes, by_factor.items(), strict=False):
        for i, run in enumerate(runs):
            color = f"C{i % 10}"
            kl = smooth(run.kl_per_dim.sum(axis=1), config.smoothing)
            ax.plot(run.betas, kl, color=color, lw=1.2, label=f"seed {run.seed}")
            if np.isfinite(run.ifp):
                ax.axvline(run.ifp, color=color, ls="--", lw=0.8)
        ax.axhline(config.epsilon, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_title(name)
        ax.set_xlabel("beta (decreasing)")
        ax.set_ylabel("smoothed KL (nats)")
        ax.legend(fontsize="x-small")
    for ax in axes[len(by_factor):]:
        ax.set_visible(False)
    figure.suptitle(f"annealing test: KL against beta, dashed = IFP (epsilon {config.epsilon:g})")
    figure.savefig(path, dpi=100)
    return path


def _save(result: AnnealingResult, proposal: BetaProposal, dataset: str, out: Path) -> tuple[Path, Path]:
    runs = [
        {"factor": r.factor_name, "seed": r.seed, "reference": r.reference.tolist(),
         "ifp": r.ifp if np.isfinite(r.ifp) else None, "steps": len(r.betas),
         "stopped_early": r.stopped_early}
        for r in result.runs
    ]
    table = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
             for row in result.table()]
    results = {
        "dataset": dataset,
        "config": result.config.model_dump(mode="json"),
        "runs": runs,
        "table": table,
        "proposal": {"betas": proposal.betas, "clusters": proposal.clusters, "ranges": proposal.ranges,
                     "unfrozen": proposal.unfrozen},
    }
    results_path = out / RESULTS_NAME
    results_path.write_text(json.dumps(results, indent=2))
    curves = {}
    for r in result.runs:
        key = f"{r.factor_name}/seed{r.seed}"
        curves[f"{key}/beta"] = r.betas
        curves[f"{key}/kl_per_dim"] = r.kl_per_dim
        curves[f"{key}/recon"] = r.recon
    curves_path = out / CURVES_NAME
    np.savez_compressed(curves_path, **curves)
    return results_path, curves_path


def run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.seeds < 1:
        raise ConfigError("--steps and --seeds must be at least 1")
    dataset = _load_dataset(args.dataset, args.options)
    factors = _factor_indices(dataset, args.factors)
    config = _config(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise DisentError(f"--device {args.device!r}: {exc}") from None
    out = args.out if args.out is not None else Path(f"ifp-{dataset.name}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"annealing test on {dataset.name}: factors {', '.join(dataset.factor_names[k] for k in factors)}; "
          f"seeds {seeds.start}..{seeds.stop - 1}", flush=True)
    print(describe(config), flush=True)

    def progress(r: AnnealingRun) -> None:
        ifp = f"{r.ifp:.2f}" if np.isfinite(r.ifp) else "none"
        stop = ", early stop" if r.stopped_early else ""
        print(f"  {r.factor_name:<14} seed {r.seed:<3} IFP {ifp:>7}  ({len(r.betas)} steps{stop}, "
              f"final KL {r.kl_per_dim[-1].sum():.2f}, recon {r.recon[-1]:.1f})", flush=True)

    result = annealing_test(dataset, seeds, config, factors, device, on_run=progress)
    proposal = propose_beta_pieces(result.ifps(), final_beta=args.final_beta, min_ratio=args.min_ratio)
    print()
    print(format_table(result))
    print()
    print(format_proposal(proposal))
    plot_path = plot(result, out / PLOT_NAME)
    results_path, curves_path = _save(result, proposal, dataset.name, out)
    print(f"plot: {plot_path}\nresults: {results_path}\ncurves: {curves_path}")
    return 0
