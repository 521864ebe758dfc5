"""``disent-study train CONFIG.yaml``: train one model in this process and print its progress.

PyTorch and the training code are imported by the functions that run the command, so that building
the parser (``--help``) stays cheap.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from disent_core.errors import DisentError

if TYPE_CHECKING:
    from disent_core.train import Report


def format_report(report: Report, total_steps: int) -> str:
    """One progress line: step, every loss term, schedule values, speed, then the information (KL)
    of each latent dimension."""
    terms = " ".join(f"{k}={v:.4g}" for k, v in report.terms.items())
    scheds = " ".join(f"{k}={v:.4g}" for k, v in report.schedules.items())
    information = " ".join(f"{v:.2f}" for v in report.latent_information)
    return (
        f"step {report.step:>{len(str(total_steps))}}/{total_steps}  {terms}  [{scheds}]  "
        f"{report.images_per_sec:.0f} img/s\n    {report.information_name.lower()}/dim: {information}"
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``train CONFIG.yaml [--set ...] [--out DIR] [--resume]``."""
    parser = subparsers.add_parser(
        "train", help="train one model (no Ray), printing losses and per-dimension KL"
    )
    parser.add_argument("config", type=Path, help="training config YAML")
    parser.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set train.steps=2000 (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="directory for checkpoint.pt and config.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``disent-study train``; returns the exit status."""
    from studies.spec.overrides import parse_set

    return train_model(args.config, parse_set(args.set), args.out, args.resume)


def train_model(
    config_path: Path, overrides: list[tuple[list[str], Any]], out: Path | None, resume: bool
) -> int:
    """Train the config at ``config_path`` (with ``overrides``) into ``out``, printing every report.

    Everything that can be refused is checked before ``out`` is created or written: the config,
    ``out`` itself, the checkpoint to resume (readable, written with this configuration) and the
    memory the run needs.

    Args:
        config_path: the training config YAML.
        overrides: ``--set`` assignments.
        out: the directory for ``checkpoint.pt`` and ``config.yaml`` (None: nothing is written).
        resume: continue ``out/checkpoint.pt``.

    Returns:
        The exit status, 0.
    """
    import yaml

    from disent_core.config import load_config, read_config_file
    from disent_core.train import CHECKPOINT_NAME, check_resumable, check_runnable, train
    from studies.cli.checks import check_directory
    from studies.spec.overrides import apply_set

    config = load_config(apply_set(read_config_file(config_path), overrides))
    if out is not None:
        check_directory(out, "--out")
    resume_from = None
    if resume:
        if out is None or not (out / CHECKPOINT_NAME).is_file():
            raise DisentError(f"--resume needs --out DIR holding a {CHECKPOINT_NAME}")
        resume_from = out / CHECKPOINT_NAME
        check_resumable(resume_from, config)
    elif out is not None and (out / CHECKPOINT_NAME).exists():
        raise DisentError(
            f"{out / CHECKPOINT_NAME} already exists; pass --resume to continue it or choose another --out"
        )
    check_runnable(config)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    print(
        f"training {config.method.name} on {config.dataset.name} for {config.train.steps} steps "
        f"(batch {config.train.batch_size}, {config.model.latent_dim} latents, seed {config.train.seed})",
        flush=True,
    )
    result = train(
        config,
        on_report=lambda r: print(format_report(r, config.train.steps), flush=True),
        checkpoint_dir=out,
        resume_from=resume_from,
    )
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint}")
    return 0
