"""``disent-study evaluate CHECKPOINT``: score a trained model with the metric engine.

Prints one line per score and writes the scores with their provenance (protocol name and hash,
representation kind, seed, library versions, per-metric timings, notes) as JSON. ``--representation
sampled`` scores draws from the posterior instead of its mean (disentanglement_lib's sampled
representation, ``disent_core.metrics.representation``); its default file name says so, so that it
never overwrites the mean evaluation.

PyTorch and the metric engine are imported by the functions that run the command, so that building
the parser (``--help``) stays cheap; ``REPRESENTATIONS`` spells out
``disent_core.metrics.representation.REPRESENTATION_KINDS`` for ``--representation``'s choices
(``tests/test_cli_startup.py`` checks that the two agree).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from disent_core.errors import DisentError

if TYPE_CHECKING:
    from disent_core.metrics.representation import RepresentationKind

REPRESENTATIONS = ("mean", "sampled")


def format_table(scores: dict[str, float], timings: dict[str, float]) -> list[str]:
    """Rows ``metric.key  value`` grouped by metric, each group followed by its wall time."""
    width = max((len(k) for k in scores), default=10)
    lines, current = [], None
    for key, value in scores.items():
        metric = key.split(".", 1)[0]
        if metric != current and current in timings:
            lines.append(f"  {'':<{width}}  ({timings[current]:.1f} s)")
        current = metric
        lines.append(f"  {key:<{width}}  {value:.4f}")
    if current in timings:
        lines.append(f"  {'':<{width}}  ({timings[current]:.1f} s)")
    return lines


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    message = f"expected a positive integer, got {text!r}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None
    if value < 1:
        raise argparse.ArgumentTypeError(message)
    return value


def seed_value(text: str) -> int:
    """An argparse type: a seed, an integer from 0 to ``MAX_SEED``.

    Args:
        text: the argument.

    Returns:
        The seed.
    """
    from disent_core.config import MAX_SEED

    message = f"expected an integer from 0 to {MAX_SEED}, got {text!r}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(message)
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``evaluate CHECKPOINT [--dataset ...] [--protocol ...] [--representation ...] ...``."""
    parser = subparsers.add_parser("evaluate", help="score a trained checkpoint with the metric suite")
    parser.add_argument("checkpoint", type=Path, help="checkpoint.pt or the --out directory of `train`")
    parser.add_argument("--dataset", default=None,
                        help="dataset to score on (default: the one the model was trained on, same options)")
    parser.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="option of --dataset, e.g. --option source=procedural (repeatable)")
    parser.add_argument("--protocol", default="dlib2019", help="dlib2019 (default), corrected or fast")
    parser.add_argument("--seed", type=seed_value, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--metrics", default=None, help="comma-separated metric names (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="images per forward pass (default: 64 on the CPU, the protocol's chunk on a "
                             "GPU)")
    parser.add_argument("--representation", choices=REPRESENTATIONS, default="mean",
                        help="score the posterior mean (default) or a sample from the posterior")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default: evaluation_<protocol>[_sampled]_seed<seed>.json "
                             "beside the checkpoint)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``disent-study evaluate``; returns the exit status."""
    from studies.spec.overrides import apply_set, parse_set

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    options = apply_set({}, parse_set(args.options))
    return evaluate_checkpoint(
        args.checkpoint, args.dataset, options, args.protocol, args.seed, metrics, args.out,
        batch_size=args.batch_size, representation=args.representation,
    )


def evaluate_checkpoint(
    checkpoint: Path,
    dataset_name: str | None,
    dataset_options: dict,
    protocol: str,
    seed: int,
    metrics: list[str] | None,
    out: Path | None,
    batch_size: int | None = None,
    representation: RepresentationKind = "mean",
) -> int:
    """Score ``checkpoint`` and write the JSON.

    Args:
        checkpoint: ``checkpoint.pt`` or the directory holding it.
        dataset_name: dataset to score on (None: the one the model was trained on).
        dataset_options: options of ``dataset_name``.
        protocol: name of the evaluation protocol.
        seed: evaluation seed.
        metrics: metric names (None: all).
        out: JSON path (None: ``evaluation_<protocol>_seed<seed>.json`` beside the checkpoint,
            ``evaluation_<protocol>_sampled_seed<seed>.json`` for the sampled representation).
        batch_size: images per forward pass (None: the engine's default).
        representation: ``mean`` or ``sampled``, the representation kind scored.

    Returns:
        The exit status, 0.
    """
    from disent_core.data.provenance import require_real_data
    from disent_core.data.registry import get_dataset, get_entry
    from disent_core.metrics import evaluate
    from disent_core.metrics.protocol import get_protocol
    from disent_core.train import load_trained
    from studies.cli.checks import check_directory

    if out is not None and out.is_dir():
        raise DisentError(f"--out {out} is a directory; give the path of the JSON file to write")
    if out is not None:
        check_directory(out.parent, "--out's folder")
    method, config = load_trained(checkpoint)
    if dataset_name is None or (get_entry(dataset_name).name == config.dataset.name and not dataset_options):
        name, options = config.dataset.name, dict(config.dataset.options)
    else:
        name, options = get_entry(dataset_name).name, dataset_options
    dataset = get_dataset(name, **options)
    if get_protocol(protocol).comparable:
        require_real_data(name, dataset.provenance, protocol)
    expected = method.context.observation_shape
    if tuple(dataset.observation_shape) != tuple(expected):
        raise DisentError(
            f"{name} has observations of shape {dataset.observation_shape} but the model was trained "
            f"on {expected} ({config.dataset.name}); evaluate on a dataset with the same shape"
        )
    print(f"evaluating the {representation} representation of {checkpoint} ({config.method.name}) on "
          f"{name} ({dataset.provenance.label()}) with protocol {protocol}, seed {seed}", flush=True)
    result = evaluate(method, dataset, protocol=protocol, seed=seed, metrics=metrics, batch_size=batch_size,
                      representation_kind=representation)
    print("\n".join(format_table(result, result.timings)))
    for metric, note in result.notes.items():
        print(f"  note: {metric}: {note}")
    if not result.comparable:
        print(f"  protocol {result.protocol} is not comparable with published numbers")
    if out is None:
        run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
        kind = "" if representation == "mean" else f"_{representation}"
        out = run_dir / f"evaluation_{protocol}{kind}_seed{seed}.json"
    payload = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "method": config.method.name,
        "dataset": {"name": name, "options": options, "provenance": dataset.provenance.as_dict()},
        "batch_size": batch_size,
        **result.record(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out)
    print(f"scores written to {out}")
    return 0
