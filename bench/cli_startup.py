"""How long does ``disent-study --help`` take? Goal: under 1 s, well below importing PyTorch.

Times, in fresh processes, ``disent-study --help`` (the installed script, else
``python -m studies.cli --help``) and ``python -c "import torch"`` side by side, alternating, and
keeps the best of ``--repeats`` runs of each (the least disturbed by other work on the machine):

    help_seconds: S
    import_torch_seconds: T
    help_vs_import_torch: S / T      (well below 1: --help imports none of torch, Ray, MLflow ...)
    help_vs_goal: S / 1.0            (below 1 meets the goal)

    python bench/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 1.0


def help_command() -> list[str]:
    """The command that prints ``disent-study``'s help.

    Returns:
        The installed ``disent-study`` script beside this interpreter with ``--help``, else
        ``python -m studies.cli --help``.
    """
    script = Path(sys.executable).with_name("disent-study")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "studies.cli"]
    return [*base, "--help"]


def seconds(command: list[str]) -> float:
    """Wall time of one run of ``command``, which must succeed.

    Args:
        command: the argv to run.

    Returns:
        Its wall time in seconds.
    """
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command; the best counts")
    args = parser.parse_args()
    commands = {"help": help_command(), "import_torch": [sys.executable, "-c", "import torch"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(seconds(command))
    best = {name: min(values) for name, values in times.items()}
    print(f"command: {' '.join(commands['help'])}  (best of {args.repeats})")
    print(f"help_seconds: {best['help']:.3f}")
    print(f"import_torch_seconds: {best['import_torch']:.3f}")
    print(f"help_vs_import_torch: {best['help'] / best['import_torch']:.3f}")
    print(f"help_vs_goal: {best['help'] / GOAL_S:.3f}   (below 1 meets the goal of {GOAL_S:g} s)")


if __name__ == "__main__":
    main()
