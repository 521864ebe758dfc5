"""The ``disent-study`` command line.

    disent-study datasets list
    disent-study datasets info NAME
    disent-study datasets prepare NAME [--data-root DIR] [--no-download]
    disent-study train CONFIG.yaml [--set train.steps=2000 ...] [--out DIR] [--resume]

Errors the user can fix print one message and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from disent_core.errors import DisentError
from studies import datasets_cmd, train_cmd
from studies.overrides import parse_set


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disent-study", description="Disentanglement studies: datasets, training and (soon) studies."
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "data_root", None):
        os.environ["DISENT_DATA"] = str(Path(args.data_root).expanduser().resolve())
    try:
        if args.command == "datasets":
            return datasets_cmd.run(args.action, getattr(args, "name", None),
                                    download=not getattr(args, "no_download", False))
        if args.command == "train":
            return train_cmd.run(args.config, parse_set(args.set), args.out, args.resume)
    except DisentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
