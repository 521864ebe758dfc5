"""``disent-study ifp --dataset NAME``: DEFT's annealing test, the per-factor information freezing
points (IFP), a plot of KL against beta, and proposed DEFT beta pieces.

The settings are resolved by ``resolve_settings``: without ``--steps`` (or with ``--quick``) a quick
demonstration (``QUICK``: 200 steps, 2 seeds, batch 16, lr 3e-3; a couple of minutes on 2 CPU
cores, rough IFPs, and many factors do not freeze at all in so few steps) on top of the
``--schedule`` preset; with ``--steps`` (or ``--preset``) the authors' preset of ``--schedule``
(``AnnealingConfig.preset``) and ``PRESET_SEEDS`` seeds. Flags given on the command line always
win. Every value used and its source are printed before training and saved in the results JSON.

NumPy, PyTorch, Matplotlib and the annealing test are imported by the functions that use them, so
that building the parser (``--help``) stays cheap.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from disent_core.errors import ConfigError, DisentError

if TYPE_CHECKING:
    from disent_core.analysis.annealing import (
        AnnealingConfig,
        AnnealingResult,
        AnnealingRun,
        AnnealSchedule,
        BetaProposal,
    )
    from disent_core.data.dataset import GroundTruthDataset

PLOT_NAME = "ifp_kl_vs_beta.png"
RESULTS_NAME = "ifp_results.json"
CURVES_NAME = "ifp_curves.npz"
QUICK: dict[str, int | float] = {"steps": 200, "seeds": 2, "batch_size": 16, "lr": 3e-3}
PRESET_SEEDS = 10
DEFAULT_SCHEDULE: AnnealSchedule = "exponential"
DEFAULTS: dict[str, int | float] = {"first_seed": 0, "min_ratio": 1.25, "final_beta": 1.0}
CONFIG_FLAGS = ("steps", "batch_size", "lr", "latent_dim", "beta_start", "gamma", "epsilon", "window")
PRESET_FIELDS = (
    "steps", "beta_start", "beta_end", "gamma", "latent_dim", "batch_size", "lr", "early_stop_recon"
)
COMMAND_LINE, QUICK_DEMO, DEFAULT = "command line", "quick demo", "default"
PRESET_NAMES = {"exponential": "preset exponential (2022)", "linear": "preset linear (2021)"}

EPILOG = """\
Which settings are used:
  without --steps: a quick demonstration (200 steps, 2 seeds, batch 16, lr 3e-3; a couple of
    minutes on 2 CPU cores), every other value from the --schedule preset. 200 steps are far too
    few for most factors to freeze, so expect rough IFPs and "no IFP" rows;
  with --steps: the authors' preset of --schedule (below) for every value not given, and 10 seeds;
  --quick / --preset choose one of the two explicitly. Flags given always win. The command prints
  every value used and where it came from (command line, quick demo, preset, default) and saves
  them under "settings" in ifp_results.json.

The authors' presets (Wu et al., DEFT, Machine Learning 2022; github.com/erow/disentanglement_lib;
add --device cuda on a GPU; dsprites_full needs `disent-study datasets prepare dsprites_full`, or
--option source=procedural offline):

  2022, exponential (examples/IFP.py @c875207): beta(t) = 70 exp(-15 t / 8000) + 1, 1 latent,
    batch 64, lr 1e-4 (inferred), early stop once the reconstruction is below 1 nat
    disent-study ifp --dataset dsprites_full --schedule exponential --steps 8000
  2021, linear (bin/dlib_ICP @dc8e2fe): beta(t) = max((1 - t / 70000) * 80, 1), 10 latents,
    batch 256, lr 5e-4
    disent-study ifp --dataset dsprites_full --schedule linear --steps 70000

The IFP is the beta at which the total KL, a running median over a window of +-WINDOW in log beta
(default 0.05), first exceeds EPSILON after having been below it. Check the readout's robustness
with --epsilon 0.05 / 0.1 / 0.2, --window 0.02 / 0.05 / 0.1 and --gamma 10 / 15.
Dataset options go through --option, e.g. --option sizes=[3,6,10,8,8] for dsprites_procedural.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``ifp --dataset NAME [...]``."""
    parser = subparsers.add_parser(
        "ifp", help="DEFT's annealing test: information freezing points per factor, plot, beta pieces",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="registered dataset name")
    parser.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="dataset option, value parsed as YAML (repeatable)")
    parser.add_argument("--factors", default=None,
                        help="comma-separated factor names to test (default: every latent factor)")
    parser.add_argument("--schedule", choices=("exponential", "linear"), default=None,
                        help="beta decay and preset: 2022 exponential (default) or 2021 linear")
    base = parser.add_mutually_exclusive_group()
    base.add_argument("--quick", dest="base", action="store_const", const="quick", default=None,
                      help="quick demo values for what is not given (the default without --steps)")
    base.add_argument("--preset", dest="base", action="store_const", const="preset",
                      help="the --schedule preset for what is not given (the default with --steps)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps per run, also the decay's time scale (quick demo {QUICK['steps']}; "
                             "preset 8000 exponential, 70000 linear)")
    parser.add_argument("--seeds", type=int, default=None,
                        help=f"reference vectors f* per factor (quick demo {QUICK['seeds']}, "
                             f"preset {PRESET_SEEDS})")
    parser.add_argument("--first-seed", type=int, default=None,
                        help=f"seeds are FIRST .. FIRST+K-1 (default {DEFAULTS['first_seed']})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"quick demo {QUICK['batch_size']}; preset 64 exponential, 256 linear")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"Adam lr (quick demo {QUICK['lr']:g}; preset 1e-4 exponential, 5e-4 linear)")
    parser.add_argument("--latent-dim", type=int, default=None,
                        help="latents (preset 1 exponential, 10 linear)")
    parser.add_argument("--beta-start", type=float, default=None,
                        help="beta_max (preset 70, exponential) or beta_h (preset 80, linear)")
    parser.add_argument("--gamma", type=float, default=None, help="exponential decay rate (preset 15)")
    parser.add_argument("--epsilon", type=float, default=None, help="KL threshold in nats (default 0.1)")
    parser.add_argument("--window", type=float, default=None,
                        help="half-width in log beta of the KL's running median before thresholding "
                             "(default 0.05; 0: none)")
    parser.add_argument("--min-ratio", type=float, default=None,
                        help=f"IFP ranges closer than this ratio share a beta piece "
                             f"(default {DEFAULTS['min_ratio']})")
    parser.add_argument("--final-beta", type=float, default=None,
                        help=f"last beta piece (default {DEFAULTS['final_beta']:g})")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default ./ifp-DATASET)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")


def _load_dataset(name: str, assignments: list[str]) -> GroundTruthDataset:
    from disent_core.data.registry import get_dataset, get_entry
    from studies.spec.overrides import apply_set, parse_set

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


@dataclass(frozen=True)
class Settings:
    """The effective settings of one ``ifp`` command and where each value came from."""

    config: AnnealingConfig
    seeds: int
    first_seed: int
    min_ratio: float
    final_beta: float
    base: Literal["quick", "preset"]
    sources: dict[str, str]
    """Setting name -> "command line", "quick demo", a ``PRESET_NAMES`` entry or "default"."""

    def values(self) -> dict[str, Any]:
        """Every value used.

        Returns:
            Setting name -> value, in ``sources`` order.
        """
        fields = {**self.config.model_dump(mode="json"), "seeds": self.seeds, "first_seed": self.first_seed,
                  "min_ratio": self.min_ratio, "final_beta": self.final_beta}
        return {name: fields[name] for name in self.sources}

    def as_json(self) -> dict[str, Any]:
        """The settings for the results JSON.

        Returns:
            ``{"base": "quick" | "preset", "values": {name: {"value": ..., "source": ...}}}``.
        """
        values = self.values()
        return {"base": self.base,
                "values": {name: {"value": values[name], "source": source}
                           for name, source in self.sources.items()}}


def resolve_settings(args: argparse.Namespace) -> Settings:
    """The effective settings: the ``--schedule`` preset, then the quick demo values (``QUICK``) when
    the base is quick, then every flag given on the command line.

    The base is ``args.base`` ("quick" or "preset") when given, else "preset" when ``--steps`` was
    given and "quick" when it was not; with the preset base, ``--seeds`` defaults to ``PRESET_SEEDS``.

    Args:
        args: the parsed ``ifp`` arguments, None where a flag was not given.

    Returns:
        The settings and the source of each value.

    Raises:
        ConfigError: when a value is invalid.
    """
    from disent_core.analysis.annealing import AnnealingConfig

    schedule: AnnealSchedule = args.schedule or DEFAULT_SCHEDULE
    base: Literal["quick", "preset"] = args.base or ("quick" if args.steps is None else "preset")
    preset = PRESET_NAMES[schedule]
    sources = {"schedule": COMMAND_LINE if args.schedule is not None else DEFAULT}
    sources.update((name, preset if name in PRESET_FIELDS else DEFAULT)
                   for name in AnnealingConfig.model_fields if name != "schedule")
    values: dict[str, Any] = {}
    if base == "quick":
        values.update(QUICK)
        sources.update(dict.fromkeys(QUICK, QUICK_DEMO))
    else:
        values["seeds"] = PRESET_SEEDS
        sources["seeds"] = DEFAULT
    for name in ("first_seed", "min_ratio", "final_beta"):
        values[name] = DEFAULTS[name]
        sources[name] = DEFAULT
    for name in (*CONFIG_FLAGS, "seeds", "first_seed", "min_ratio", "final_beta"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
            sources[name] = COMMAND_LINE
    if values["seeds"] < 1:
        raise ConfigError(f"--seeds must be at least 1, got {values['seeds']}")
    try:
        config = AnnealingConfig.preset(schedule, **{k: v for k, v in values.items() if k in CONFIG_FLAGS})
    except ValueError as exc:
        raise ConfigError(f"invalid annealing settings: {exc}") from None
    return Settings(config=config, seeds=values["seeds"], first_seed=values["first_seed"],
                    min_ratio=values["min_ratio"], final_beta=values["final_beta"], base=base,
                    sources=sources)


def format_settings(settings: Settings) -> str:
    """The effective settings as printed before training.

    Args:
        settings: the resolved settings.

    Returns:
        A header naming the base, then every value used, one per line, with where it came from.
    """
    base = QUICK_DEMO if settings.base == "quick" else PRESET_NAMES[settings.config.schedule]
    lines = [f"effective settings (base: {base}; flags given on the command line win):"]
    for name, value in settings.values().items():
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        unused = " (unused by linear)" if name == "gamma" and settings.config.schedule == "linear" else ""
        lines.append(f"  {name:<16} {shown:<12} {settings.sources[name]}{unused}")
    return "\n".join(lines)


def describe(config: AnnealingConfig) -> str:
    """The schedule and settings in one line."""
    if config.schedule == "linear":
        beta = f"max((1 - t/{config.steps}) * {config.beta_start:g}, {config.beta_end:g})"
    else:
        beta = f"{config.beta_start:g} exp(-{config.gamma:g} t/{config.steps}) + {config.beta_end:g}"
    return (
        f"beta(t) = {beta}; {config.steps} steps, batch {config.batch_size}, lr {config.lr:g}, "
        f"{config.latent_dim} latent(s), epsilon {config.epsilon:g}, window {config.window:g}"
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
    """Total KL (running median over beta) against beta, one panel per factor, one line per seed;
    IFPs dashed.

    Args:
        result: the annealing test's runs and configuration.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from disent_core.analysis.annealing import smooth_over_beta

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
            kl = smooth_over_beta(run.betas, run.kl_per_dim.sum(axis=1), config.window)
            ax.plot(run.betas, kl, color=color, lw=1.2, label=f"seed {run.seed}")
            if np.isfinite(run.ifp):
                ax.axvline(run.ifp, color=color, ls="--", lw=0.8)
        ax.axhline(config.epsilon, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_title(name)
        ax.set_xlabel("beta (decreasing)")
        ax.set_ylabel("KL, median over beta (nats)")
        ax.legend(fontsize="x-small")
    for ax in axes[len(by_factor):]:
        ax.set_visible(False)
    figure.suptitle(f"annealing test: KL against beta, dashed = IFP (epsilon {config.epsilon:g})")
    figure.savefig(path, dpi=100)
    return path


def _save(
    result: AnnealingResult, proposal: BetaProposal, settings: Settings, dataset: str, out: Path
) -> tuple[Path, Path]:
    import numpy as np

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
        "settings": settings.as_json(),
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
    """Run ``disent-study ifp``; returns the exit status."""
    import numpy as np
    import torch

    from disent_core.analysis.annealing import annealing_test, propose_beta_pieces

    settings = resolve_settings(args)
    config = settings.config
    dataset = _load_dataset(args.dataset, args.options)
    factors = _factor_indices(dataset, args.factors)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise DisentError(f"--device {args.device!r}: {exc}") from None
    out = args.out if args.out is not None else Path(f"ifp-{dataset.name}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(settings.first_seed, settings.first_seed + settings.seeds)
    print(f"annealing test on {dataset.name}: factors {', '.join(dataset.factor_names[k] for k in factors)}; "
          f"seeds {seeds.start}..{seeds.stop - 1}", flush=True)
    print(format_settings(settings), flush=True)
    print(describe(config), flush=True)

    def progress(r: AnnealingRun) -> None:
        ifp = f"{r.ifp:.2f}" if np.isfinite(r.ifp) else "none"
        stop = ", early stop" if r.stopped_early else ""
        print(f"  {r.factor_name:<14} seed {r.seed:<3} IFP {ifp:>7}  ({len(r.betas)} steps{stop}, "
              f"final KL {r.kl_per_dim[-1].sum():.2f}, recon {r.recon[-1]:.1f})", flush=True)

    result = annealing_test(dataset, seeds, config, factors, device, on_run=progress)
    proposal = propose_beta_pieces(
        result.ifps(), final_beta=settings.final_beta, min_ratio=settings.min_ratio
    )
    print()
    print(format_table(result))
    print()
    print(format_proposal(proposal))
    plot_path = plot(result, out / PLOT_NAME)
    results_path, curves_path = _save(result, proposal, settings, dataset.name, out)
    print(f"plot: {plot_path}\nresults: {results_path}\ncurves: {curves_path}")
    return 0
