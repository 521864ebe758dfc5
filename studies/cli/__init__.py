"""The ``disent-study`` command line.

    disent-study --version
    disent-study datasets list
    disent-study datasets info NAME
    disent-study datasets prepare NAME [--data-root DIR] [--no-download]
    disent-study train CONFIG.yaml [--set train.steps=2000 ...] [--out DIR] [--resume]
    disent-study evaluate CHECKPOINT [--dataset NAME] [--protocol dlib2019] [--seed 0] [--metrics mig,dci]
                          [--batch-size N] [--representation mean|sampled]
    disent-study ifp --dataset NAME [--steps N --seeds K --schedule linear|exponential --epsilon E ...]
    disent-study run SPEC.yaml|NAME [--root ./runs] [--set search.num_trials=20 ...] [--address ADDR]
                     [--autoscaling] [--quiet|--verbose] [--no-report] [--dry-run [--images-per-sec N]]
    disent-study resume STUDY_DIR [--address ADDR] [--autoscaling] [--quiet|--verbose] [--no-report]
                        [--allow-outside-root]
    disent-study status STUDY_DIR
    disent-study ui [--root ./runs] [--port 5000]
    disent-study report STUDY_DIR [--out DIR] [--allow-outside-root]
    disent-study report --experiment NAME [--tracking-uri URI] [--out DIR]

Each command group is one module of this package with ``add_parser(subparsers)``, which sets the
parser's ``handler``, and ``run(args)``; ``checks`` holds what several commands check before they
start Ray or write anything. Errors the user can fix print one message and exit with status 2,
without a traceback, and leave nothing behind; a study stopped by Ctrl-C prints one
``interrupted: ...`` line naming ``disent-study resume`` and exits with status 130.

Building the parser imports none of PyTorch, Ray, Optuna, MLflow, scikit-learn or pandas (so that
``--help`` and ``--version`` answer at once): a command module imports them, and ``checks``, in the
functions that run its command (``tests/test_cli_startup.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path

from disent_core.errors import DisentError
from studies.cli import datasets, evaluate, ifp, report, study, train

COMMANDS = (datasets, train, ifp, evaluate, study, report)
"""The command modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``disent-study`` parser with every command's subparser."""
    parser = argparse.ArgumentParser(
        prog="disent-study",
        description="Disentanglement studies: datasets, training, evaluation and studies."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('disent-studies')}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``disent-study`` with ``argv`` (default: the process's); returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "data_root", None):
        os.environ["DISENT_DATA"] = str(Path(args.data_root).expanduser().resolve())
    try:
        return args.handler(args)
    except DisentError as exc:
        status = getattr(exc, "exit_status", 2)  # 130: a study stopped by Ctrl-C
        print(f"{'interrupted' if status == 130 else 'error'}: {exc}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
