"""The ``disent-study`` command line.

    disent-study datasets list
    disent-study datasets info NAME
    disent-study datasets prepare NAME [--data-root DIR] [--no-download]
    disent-study train CONFIG.yaml [--set train.steps=2000 ...] [--out DIR] [--resume]
    disent-study evaluate CHECKPOINT [--dataset NAME] [--protocol dlib2019] [--seed 0] [--metrics mig,dci]
                          [--batch-size N] [--representation mean|sampled]
    disent-study ifp --dataset NAME [--steps N --seeds K --schedule linear|exponential --epsilon E ...]
    disent-study run SPEC.yaml [--root ./runs] [--set search.num_trials=20 ...] [--address ADDR]
    disent-study resume STUDY_DIR
    disent-study status STUDY_DIR
    disent-study ui [--root ./runs] [--port 5000]
    disent-study report STUDY_DIR [--out DIR]
    disent-study report --experiment NAME [--tracking-uri URI] [--out DIR]

Errors the user can fix print one message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from disent_core.errors import DisentError
from disent_core.metrics.representation import REPRESENTATION_KINDS
from studies import datasets_cmd, evaluate_cmd, ifp_cmd, report_cmd, study_cmd, train_cmd
from studies.overrides import apply_set, parse_set


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disent-study",
        description="Disentanglement studies: datasets, training, evaluation and studies."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ds = sub.add_parser("datasets", help="list, describe and prepare datasets")
    ds_sub = ds.add_subparsers(dest="action", required=True)
    ds_sub.add_parser("list", help="every registered dataset and whether it is ready")
    for action, help_text in (("info", "factors, files, checksums and cache status"),
                              ("prepare", "download, verify and convert once into the data root")):
        p = ds_sub.add_parser(action, help=help_text)
        p.add_argument("name")
        if action == "prepare":
            p.add_argument("--no-download", action="store_true",
                           help="only use files already placed in the raw directory")
    for p in (ds, *ds_sub.choices.values()):
        p.add_argument("--data-root", default=None,
                       help="data root (default: $DISENT_DATA or ~/.cache/disent_studies/data)")

    tr = sub.add_parser("train", help="train one model (no Ray), printing losses and per-dimension KL")
    tr.add_argument("config", type=Path, help="training config YAML")
    tr.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. --set train.steps=2000 (repeatable)")
    tr.add_argument("--out", type=Path, default=None, help="directory for checkpoint.pt and config.yaml")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")

    ifp = sub.add_parser(
        "ifp", help="DEFT's annealing test: information freezing points per factor, plot, beta pieces",
        epilog=ifp_cmd.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ifp_cmd.add_arguments(ifp)
    ev = sub.add_parser("evaluate", help="score a trained checkpoint with the metric suite")
    ev.add_argument("checkpoint", type=Path, help="checkpoint.pt or the --out directory of `train`")
    ev.add_argument("--dataset", default=None,
                    help="dataset to score on (default: the one the model was trained on, same options)")
    ev.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                    help="option of --dataset, e.g. --option source=procedural (repeatable)")
    ev.add_argument("--protocol", default="dlib2019", help="dlib2019 (default), corrected or fast")
    ev.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    ev.add_argument("--metrics", default=None, help="comma-separated metric names (default: all)")
    ev.add_argument("--batch-size", type=positive_int, default=None,
                    help="images per forward pass (default: 64 on the CPU, the protocol's chunk on a GPU)")
    ev.add_argument("--representation", choices=REPRESENTATION_KINDS, default="mean",
                    help="score the posterior mean (default) or a sample from the posterior")
    ev.add_argument("--out", type=Path, default=None,
                    help="JSON output (default: evaluation_<protocol>[_sampled]_seed<seed>.json beside the "
                         "checkpoint)")
    address_help = "Ray cluster address (default: $RAY_ADDRESS if set, else an embedded local Ray)"
    rn = sub.add_parser("run", help="run a study spec: Optuna search in Ray Tune, tracked in MLflow")
    rn.add_argument("spec", type=Path, help="study spec YAML (see studies/catalog/)")
    rn.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a spec field, e.g. --set train.steps=2000 (repeatable)")
    default_root = Path(os.environ.get("DISENT_RUNS_ROOT", "runs"))
    root_help = "runs root (default: $DISENT_RUNS_ROOT, else ./runs)"
    rn.add_argument("--root", type=Path, default=default_root, help=root_help)
    rn.add_argument("--address", default=None, help=address_help)
    rs = sub.add_parser("resume", help="continue a study after a crash or interruption")
    rs.add_argument("study_dir", type=Path, help="the study directory, <root>/<study name>")
    rs.add_argument("--address", default=None, help=address_help)
    st = sub.add_parser("status", help="a table of a study's trials")
    st.add_argument("study_dir", type=Path, help="the study directory, <root>/<study name>")
    ui = sub.add_parser("ui", help="start MLflow's UI for a runs root on 127.0.0.1")
    ui.add_argument("--root", type=Path, default=default_root, help=root_help)
    ui.add_argument("--port", type=int, default=5000)
    rp = sub.add_parser("report", help="a study's HTML report, figures and results table, logged to MLflow")
    rp.add_argument("study_dir", type=Path, nargs="?", default=None,
                    help="the study directory, <root>/<study name> (or give --experiment)")
    rp.add_argument("--experiment", default=None, help="build it from this MLflow experiment alone")
    rp.add_argument("--tracking-uri", default=None,
                    help="with --experiment: the MLflow tracking URI "
                         "(default: sqlite under $DISENT_RUNS_ROOT, else ./runs)")
    rp.add_argument("--out", type=Path, default=None,
                    help="output directory (default: <study dir>/report, or ./<study name>-report)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "data_root", None):
        os.environ["DISENT_DATA"] = str(Path(args.data_root).expanduser().resolve())
    try:
        if args.command == "datasets":
            return datasets_cmd.run(args.action, getattr(args, "name", None),
                                    download=not getattr(args, "no_download", False))
        if args.command == "evaluate":
            metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
            options = apply_set({}, parse_set(args.options))
            return evaluate_cmd.run(
                args.checkpoint, args.dataset, options, args.protocol, args.seed, metrics, args.out,
                batch_size=args.batch_size, representation=args.representation,
            )
        if args.command == "train":
            return train_cmd.run(args.config, parse_set(args.set), args.out, args.resume)
        if args.command == "ifp":
            return ifp_cmd.run(args)
        if args.command == "run":
            return study_cmd.run(args.spec, parse_set(args.set), args.root, args.address)
        if args.command == "resume":
            return study_cmd.resume(args.study_dir, args.address)
        if args.command == "status":
            return study_cmd.status(args.study_dir)
        if args.command == "ui":
            return study_cmd.ui(args.root, args.port)
        if args.command == "report":
            return report_cmd.run(args.study_dir, args.experiment, args.tracking_uri, args.out)
    except DisentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
