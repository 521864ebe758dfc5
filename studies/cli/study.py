"""``disent-study run | resume | status | ui``: run studies and look at them.

``run`` validates the spec (every problem on its own line, exit status 2), then runs it under a
runs root (default ``./runs``): embedded Ray, Optuna sqlite in the study directory and MLflow
sqlite plus artifacts in the root, unless the spec names a cluster's storage and tracking URLs.
Before Ray starts or anything is written, ``run`` and ``resume`` check the runs root, the stores
(whole SQLite files, reachable servers) and that one trial's resources fit the machine or cluster
(``studies.cli.checks``; ``--autoscaling`` skips the cluster comparison), each failure one message
with exit status 2. A study that ends with every trial failed exits with status 1; one that
completes gets its report (``studies.cli.report``) unless ``--no-report``; one stopped by Ctrl-C
exits with status 130. ``--quiet`` and ``--verbose`` set how much is printed
(``studies.orchestration.output``).
``run --dry-run`` validates the spec and prints the number of trials, their resources, the storage
they will leave and the training compute they need (``studies.orchestration.budget``), without
starting Ray, checking the runs root or writing anything. ``run``'s SPEC is a file or the name of a
catalog study (``studies.cli.catalog``: ``disent-study run quickstart``).
``status`` prints a table of the study's trials from MLflow, with Optuna's count beside it.
``ui`` starts MLflow's UI for a runs root on 127.0.0.1 and prints its URL. The server runs in a
session of its own, and however ``ui`` ends (Ctrl-C, SIGTERM, SIGHUP, the server exiting) every
process of that session is stopped with it: no ``mlflow server`` or uvicorn is left listening.

Ray, Optuna, MLflow, pandas and the orchestration are imported by the functions that run a command,
so that building the parser (``--help``) stays cheap.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from disent_core.errors import DisentError
from studies.cli.catalog import spec_file
from studies.cli.flags import ALLOW_OUTSIDE_ROOT

if TYPE_CHECKING:
    from studies.spec import StudySpec
    from studies.study_dir import StudyState


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``run``, ``resume``, ``status`` and ``ui``."""
    address_help = "Ray cluster address (default: $RAY_ADDRESS if set, else an embedded local Ray)"
    autoscaling_help = ("the Ray cluster adds nodes on demand: do not refuse trial resources larger than "
                        "its current total")
    default_root = Path(os.environ.get("DISENT_RUNS_ROOT", "runs"))
    root_help = "runs root (default: $DISENT_RUNS_ROOT, else ./runs)"
    run_parser = subparsers.add_parser(
        "run", help="run a study spec: Optuna search in Ray Tune, tracked in MLflow"
    )
    run_parser.add_argument("spec", type=Path,
                            help="study spec YAML, or the name of a catalog study (studies/catalog/), "
                                 "e.g. quickstart")
    run_parser.add_argument("--set", dest="set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a spec field, e.g. --set train.steps=2000 (repeatable)")
    run_parser.add_argument("--root", type=Path, default=default_root, help=root_help)
    run_parser.add_argument("--address", default=None, help=address_help)
    run_parser.add_argument("--autoscaling", action="store_true", help=autoscaling_help)
    run_parser.add_argument("--dry-run", action="store_true",
                            help="validate the spec and print its trials, storage and compute; start nothing")
    run_parser.add_argument("--images-per-sec", type=float, default=None, metavar="N",
                            help="with --dry-run: training images/s of one trial (default: measured on CPU, "
                                 "assumed on GPU)")
    run_parser.add_argument("--population-images-per-sec", type=float, default=None, metavar="N",
                            help="with --dry-run: training images/s of a Tune trial of resources.population "
                                 "members, all together (bench/population_throughput.py's "
                                 "population_images_per_sec[N]; default: not known)")
    _add_output_flags(run_parser)
    run_parser.set_defaults(handler=_run_command)
    resume_parser = subparsers.add_parser("resume", help="continue a study after a crash or interruption")
    resume_parser.add_argument("study_dir", type=Path, help="the study directory, <root>/<study name>")
    resume_parser.add_argument("--address", default=None, help=address_help)
    resume_parser.add_argument("--autoscaling", action="store_true", help=autoscaling_help)
    resume_parser.add_argument(ALLOW_OUTSIDE_ROOT, action="store_true",
                               help="a copied or moved study: let its MLflow runs write artifacts into "
                                    "the original's artifact folder")
    _add_output_flags(resume_parser)
    resume_parser.set_defaults(handler=lambda args: resume(args.study_dir, args.address, args.autoscaling,
                                                           args.allow_outside_root, args.output,
                                                           args.make_report))
    status_parser = subparsers.add_parser("status", help="a table of a study's trials")
    status_parser.add_argument("study_dir", type=Path, help="the study directory, <root>/<study name>")
    status_parser.set_defaults(handler=lambda args: status(args.study_dir))
    ui_parser = subparsers.add_parser("ui", help="start MLflow's UI for a runs root on 127.0.0.1")
    ui_parser.add_argument("--root", type=Path, default=default_root, help=root_help)
    ui_parser.add_argument("--port", type=int, default=5000)
    ui_parser.set_defaults(handler=lambda args: ui(args.root, args.port))


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-report", dest="make_report", action="store_false",
                        help="do not build the study's report when it completes (disent-study report does)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", dest="output", action="store_const", const="quiet", default="normal",
                       help="print only failed trials and the closing summary")
    group.add_argument("--verbose", dest="output", action="store_const", const="verbose",
                       help="also print what Ray, Tune, Optuna and MLflow print themselves")


def _run_command(args: argparse.Namespace) -> int:
    from studies.spec.overrides import parse_set

    for flag, given in (("--images-per-sec", args.images_per_sec),
                        ("--population-images-per-sec", args.population_images_per_sec)):
        if given is not None and not args.dry_run:
            raise DisentError(f"{flag} is an input of the estimate; give it with --dry-run")
    overrides = parse_set(args.set)
    with spec_file(args.spec) as spec_path:
        if args.dry_run:
            return dry_run(spec_path, overrides, args.images_per_sec, args.population_images_per_sec)
        return run(spec_path, overrides, args.root, args.address, args.autoscaling, args.output,
                   args.make_report)


def dry_run(
    spec_path: Path,
    overrides: list[tuple[list[str], Any]],
    images_per_sec: float | None = None,
    population_images_per_sec: float | None = None,
) -> int:
    """Validate a spec (with ``--set`` overrides) and print what running it would take.

    Nothing starts and nothing is written: no Ray, no runs root, no stores.

    Args:
        spec_path: the study spec YAML.
        overrides: ``--set`` assignments.
        images_per_sec: training throughput of one trial (None: the estimate's default).
        population_images_per_sec: training throughput of a Tune trial of ``resources.population``
            members, all together (None: not known).

    Returns:
        0.

    Raises:
        DisentError: the spec is invalid, a throughput is not positive, or a population's is given
            for a study of one member per Tune trial.
    """
    from studies.orchestration.budget import estimate_study, format_budget
    from studies.spec import load_spec

    for flag, given in (("--images-per-sec", images_per_sec),
                        ("--population-images-per-sec", population_images_per_sec)):
        if given is not None and not given > 0:
            raise DisentError(f"{flag} must be > 0, got {given:g}")
    spec = load_spec(spec_path, overrides)
    if population_images_per_sec is not None and spec.population == 1:
        raise DisentError("--population-images-per-sec is a population's images/s, but this study trains one "
                          "member per Tune trial (resources.population resolves to 1)")
    budget = estimate_study(spec, images_per_sec, population_images_per_sec)
    print(f"dry run of study {spec.name} ({spec_path}): the spec is valid; nothing was started or written")
    for line in format_budget(budget):
        print(line)
    return 0


def run(
    spec_path: Path,
    overrides: list[tuple[list[str], Any]],
    root: Path,
    address: str | None,
    autoscaling: bool = False,
    output: str = "normal",
    make_report: bool = True,
) -> int:
    """Validate a spec (with ``--set`` overrides), check where it would run, and run its study.

    Args:
        spec_path: the study spec YAML.
        overrides: ``--set`` assignments.
        root: the runs root.
        address: the Ray cluster (None: ``$RAY_ADDRESS``, else an embedded local Ray).
        autoscaling: the cluster adds nodes on demand (skips the cluster resource comparison).
        output: ``normal``, ``quiet`` or ``verbose`` (``--quiet``, ``--verbose``).
        make_report: build the report when the study completes (``--no-report``: not).

    Returns:
        0, or 1 when every trial failed.
    """
    from studies.cli.checks import check_directory, check_stores, check_trial_resources

    embedded_ray_token(address)
    from studies.orchestration.runner import run_study
    from studies.spec import load_spec
    from studies.study_dir import default_tracking_uri

    spec = load_spec(spec_path, overrides)
    check_directory(root, "--root")
    root = root.expanduser().resolve()
    tracking_uri = spec.tracking.mlflow_uri or default_tracking_uri(root)
    optuna_storage = spec.storage.optuna or f"sqlite:///{root / spec.name / 'optuna.db'}"
    check_stores(tracking_uri, optuna_storage, must_exist=False)
    check_trial_resources(spec, address, autoscaling)
    print(f"study {spec.name}: {', '.join(spec.methods)} on {spec.dataset.name}, seeds {spec.seeds}, "
          f"{spec.search.algorithm} search, objective "
          + ", ".join(f"{o.mode} {o.metric}" for o in spec.objectives), flush=True)
    return finish(run_study(spec, root, address, output), make_report)


def embedded_ray_token(address: str | None) -> None:
    """Token authentication for the embedded Ray, with a token of this driver's own.

    Ray 2.60 turns token authentication on for a Ray that ``ray.init`` starts, writes a token to
    ``~/.ray/auth_token`` and warns that it did. When the study runs on such a Ray (no ``--address``,
    no ``$RAY_ADDRESS``) and the user has not chosen a mode (``$RAY_AUTH_MODE``), this sets the same
    mode explicitly with a random token in ``$RAY_AUTH_TOKEN``, which Ray's processes inherit, so that
    nothing is written to the home directory and there is nothing to warn about. Ray reads both when
    it is imported, so this runs before, or not at all.

    Args:
        address: the ``--address`` given, or None.
    """
    if address or os.environ.get("RAY_ADDRESS") or "RAY_AUTH_MODE" in os.environ or "ray" in sys.modules:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def resume(directory: Path, address: str | None, autoscaling: bool = False,
           allow_outside_root: bool = False, output: str = "normal", make_report: bool = True) -> int:
    """Check a study directory's stores and resources, then continue the study.

    Args:
        directory: the study directory.
        address: the Ray cluster (None: ``$RAY_ADDRESS``, else an embedded local Ray).
        autoscaling: the cluster adds nodes on demand (skips the cluster resource comparison).
        allow_outside_root: a copied or moved study may write MLflow artifacts where it came from.
        output: ``normal``, ``quiet`` or ``verbose`` (``--quiet``, ``--verbose``).
        make_report: build the report when the study completes (``--no-report``: not).

    Returns:
        0, or 1 when every trial failed.
    """
    from studies.cli.checks import check_artifacts_inside, check_stores, check_trial_resources

    embedded_ray_token(address)
    from studies.orchestration.runner import resume_study
    from studies.study_dir import StudyState, load_study_spec

    directory = directory.expanduser().resolve()
    state = StudyState.load(directory)
    check_stores(state.tracking_uri, state.optuna_storage, must_exist=True)
    check_trial_resources(load_study_spec(directory), address, autoscaling)
    check_artifacts_inside(state, "resume", allow_outside_root)
    print(f"resuming {directory}", flush=True)
    return finish(resume_study(directory, address, output), make_report)


def finish(directory: Path, make_report: bool) -> int:
    """The exit status of a study that completed, after building its report unless told not to.

    Args:
        directory: the study directory.
        make_report: build the report (as ``disent-study report DIR`` does) when not every trial failed.

    Returns:
        ``exit_status(directory)``.
    """
    status = exit_status(directory)
    if make_report and status == 0:
        from studies.cli.report import report

        print("", flush=True)
        try:
            report(directory, None, None, None)
        except Exception as exc:  # the study's results are written; the report is built again any time
            print(f"warning: the study completed but its report could not be built ({exc}); build it "
                  f"with `disent-study report {directory}`", file=sys.stderr)
    return status


def exit_status(directory: Path) -> int:
    """1 when the study's results table holds trials and every one of them failed, else 0.

    Args:
        directory: the study directory, holding ``results.parquet`` once the study stopped.

    Returns:
        The exit status of ``run`` / ``resume``.
    """
    import pandas as pd

    path = directory / "results.parquet"
    if not path.is_file():
        return 0
    table = pd.read_parquet(path)
    if table.empty or "status" not in table.columns or not (table["status"] == "failed").all():
        return 0
    print(f"error: all {len(table)} trial(s) of the study failed; `disent-study status {directory}` "
          "gives each one's reason", file=sys.stderr)
    return 1


def status_table(spec: StudySpec, state: StudyState) -> tuple[list[str], list[tuple[list[str], str]],
                                                              dict[str, int]]:
    """The trials of a study as MLflow holds them, for ``status``.

    Args:
        spec: the study's spec.
        state: the study's state.

    Returns:
        ``(header, rows, counts)``: the columns (trial, method, seed, population when some trial
        trained in one, status, step, each searched parameter, each objective); per trial its text
        cells and why it failed, stopped or is
        running again ('' for a completed trial, whose earlier reason is stale); and the count of
        runs per MLflow status.
    """
    from mlflow.tracking import MlflowClient

    from studies.report.results import trial_row
    from studies.results import EVALUATION, POPULATION, SEARCH, nested_runs

    runs = nested_runs(MlflowClient(state.tracking_uri), state.experiment_id, state.parent_run_id)
    rows = [trial_row(spec, run) for run in runs]
    searched = sorted({key for row in rows for key in row if key.startswith(SEARCH)})
    objectives = [f"{EVALUATION}{o.metric}" for o in spec.objectives]
    populations = [POPULATION] if any(row.get(POPULATION) for row in rows) else []
    header = ["trial", "method", "seed", *populations, "status", "step",
              *(key.removeprefix(SEARCH) for key in searched), *(o.metric for o in spec.objectives)]
    table = []
    for row in rows:
        cells = [str(row["trial_id"]), str(row["method"]), _cell(row["seed"]),
                 *(_cell(row.get(key)) for key in populations), str(row["status"]),
                 _cell(row["step"]), *(_cell(row.get(key)) for key in searched),
                 *(_cell(row.get(key), ".4f") for key in objectives)]
        reason = str(row.get("error") or "") if row["status"] != "completed" else ""
        table.append((cells, reason))
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.info.status] = counts.get(run.info.status, 0) + 1
    return header, table, counts


def _cell(value: Any, number_format: str = "g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, number_format) if isinstance(value, (int, float)) else str(value)


def status(directory: Path) -> int:
    """Print a study's trials (searched values and objectives) and its MLflow and Optuna counts.

    Args:
        directory: the study directory.

    Returns:
        0.
    """
    import optuna

    from studies.cli.checks import check_stores
    from studies.study_dir import StudyState, load_study_spec

    directory = directory.expanduser().resolve()
    state = StudyState.load(directory)
    check_stores(state.tracking_uri, state.optuna_storage, must_exist=True)
    spec = load_study_spec(directory)
    header, rows, counts = status_table(spec, state)
    widths = [max([len(h), *(len(cells[i]) for cells, _ in rows)]) for i, h in enumerate(header)]
    print(f"study {state.name} ({directory})")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for cells, reason in rows:
        print("  ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=True)), reason]).rstrip())
    print("mlflow runs: " + (", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) or "none"))
    study = optuna.load_study(study_name=state.optuna_study, storage=state.optuna_storage)
    states: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print("optuna trials (one per configuration): "
          + (", ".join(f"{v} {k.lower()}" for k, v in sorted(states.items())) or "none"))
    return 0


def ui(root: Path, port: int, host: str = "127.0.0.1") -> int:
    from studies.study_dir import StudyState, default_tracking_uri

    root = root.expanduser().resolve()
    if not (root / "mlflow.db").is_file():
        raise DisentError(
            f"no MLflow store at {root / 'mlflow.db'}; give the --root that `disent-study run` used"
        )
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", default_tracking_uri(root),
        "--default-artifact-root", (root / "mlartifacts").as_uri(),
        "--host", host, "--port", str(port), "--workers", "1",
    ]
    print(f"MLflow UI for {root}: http://{host}:{port}  (Ctrl-C stops it)", flush=True)
    for study_json in sorted(root.glob("*/study.json")):
        try:
            state = StudyState.load(study_json.parent)
        except DisentError:
            continue
        print(f"  study {state.name}: http://{host}:{port}/#/experiments/{state.experiment_id}/runs",
              flush=True)
    return serve(command, env)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end ``ui`` like Ctrl-C does (SIGINT is Python's KeyboardInterrupt already)."""
STOP_TIMEOUT_S = 10.0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in a new session until it exits or this process is told to stop, then stop
    every process of that session; returns the command's exit status."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in STOP_SIGNALS}
    # Ctrl-C as KeyboardInterrupt even where SIGINT was inherited ignored (started with & by a
    # non-interactive shell), in which case Python installs no handler of its own
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return process.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *STOP_SIGNALS})
        try:
            stop_process_group(process)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, *STOP_SIGNALS})


def stop_process_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to every process in the group that ``process`` leads, SIGKILL to what is still
    there after ``timeout`` seconds; returns once the group is gone (or after another timeout)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        if _wait_for_group_exit(process, timeout):
            break
    process.poll()


def _wait_for_group_exit(process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        process.poll()  # reap the leader, or it stays in the group as a zombie
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
