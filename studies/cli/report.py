"""``disent-study report``: a study's HTML report, its figures and results table, logged to MLflow.

    disent-study report runs/quickstart                       # into runs/quickstart/report/
    disent-study report --experiment quickstart               # from MLflow alone (default store: ./runs)
    disent-study report --experiment NAME --tracking-uri http://mlflow:5000 --out report/

Writes ``report.html`` (self-contained, opens offline), ``figures/*.png|svg`` and
``results.parquet`` (every trial with its status) into ``--out`` (default: ``<study dir>/report``,
or ``./<study name>-report`` for ``--experiment``), logs them as artifacts of the study's parent
run under ``report/``, and prints one finding per method (``studies.report.findings``), where the
page is and how to open it. Works while a study runs and after a crash: running, failed and stopped
trials are left out and counted in the header.

MLflow, the checks and the report are imported by the functions that run the command, so that
building the parser (``--help``) stays cheap.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from disent_core.errors import DisentError
from studies.cli.flags import ALLOW_OUTSIDE_ROOT

if TYPE_CHECKING:
    from studies.report.results import StudyResults

ARTIFACT_PATH = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``report [STUDY_DIR] [--experiment NAME] [--tracking-uri URI] [--out DIR]``."""
    parser = subparsers.add_parser(
        "report", help="a study's HTML report, figures and results table, logged to MLflow"
    )
    parser.add_argument("study_dir", type=Path, nargs="?", default=None,
                        help="the study directory, <root>/<study name> (or give --experiment)")
    parser.add_argument("--experiment", default=None, help="build it from this MLflow experiment alone")
    parser.add_argument("--tracking-uri", default=None,
                        help="with --experiment: the MLflow tracking URI "
                             "(default: sqlite under $DISENT_RUNS_ROOT, else ./runs)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: <study dir>/report, or ./<study name>-report)")
    parser.add_argument(ALLOW_OUTSIDE_ROOT, action="store_true",
                        help="a copied or moved study: log the report into the original's artifact folder")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``disent-study report``; returns the exit status."""
    return report(args.study_dir, args.experiment, args.tracking_uri, args.out, args.allow_outside_root)


def report(study_dir: Path | None, experiment: str | None, tracking_uri: str | None, out: Path | None,
           allow_outside_root: bool = False) -> int:
    """Build and log the report of a study directory or of an MLflow experiment.

    Args:
        study_dir: the study directory (or None with ``experiment``).
        experiment: the MLflow experiment to build it from alone.
        tracking_uri: with ``experiment``, its tracking URI.
        out: the output directory (default: ``<study dir>/report`` or ``./<study name>-report``).
        allow_outside_root: log it even where a copied study's artifacts lie outside its runs root.

    Returns:
        0.
    """
    from studies.cli.checks import artifacts_outside_root, check_directory, check_stores
    from studies.report.build import write_report
    from studies.report.results import default_experiment_uri, load_experiment, load_study_dir
    from studies.study_dir import StudyState

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    outside = None
    if study_dir is not None and (experiment is not None or tracking_uri is not None):
        raise DisentError("give a study directory or --experiment NAME [--tracking-uri URI], not both; "
                          "a study directory records its own tracking URI")
    if out is not None:
        check_directory(out, "--out")
    if experiment is not None:
        check_tracking_store(tracking_uri or default_experiment_uri())
        results = load_experiment(experiment, tracking_uri)
    elif study_dir is not None:
        if (study_dir / "study.json").is_file():
            state = StudyState.load(study_dir)
            check_stores(state.tracking_uri, state.optuna_storage, must_exist=True)
            outside = None if allow_outside_root else artifacts_outside_root(state)
        results = load_study_dir(study_dir)
    else:
        raise DisentError("give a study directory (disent-study report runs/<study>) or --experiment NAME")
    if out is None:
        out = results.study_dir / "report" if results.study_dir else Path(f"{results.name}-report")
    out = out.expanduser().resolve()
    counts = results.counts
    print(f"study {results.name}: {counts['completed']} completed trial(s) of {results.planned} planned, "
          f"{counts['failed']} failed, {counts['running']} running, {counts['stopped']} stopped "
          f"(trials read from {results.source})", flush=True)
    path = write_report(results, out)
    logged = outside is None and log_report(results, out)
    if counts["completed"]:
        from studies.report.findings import study_findings

        for line in study_findings(results):
            print(f"found:   {line}")
    print(f"report:  {path}")
    print(f"open it: xdg-open {path}   (or {path.as_uri()} in a browser)")
    if logged:
        print(f"MLflow:  artifacts {ARTIFACT_PATH}/ of run {results.parent_run_id} at {results.tracking_uri}")
    elif outside is not None:
        print(f"MLflow:  not logged: this study's runs keep their artifacts in {outside}, outside its runs "
              f"root (a copied or moved study); give {ALLOW_OUTSIDE_ROOT} to log it there")
    return 0


def check_tracking_store(tracking_uri: str) -> None:
    """Refuse an MLflow store that is not a whole SQLite database, or a server that is unreachable
    (an absent SQLite store is refused when the report reads it).

    Args:
        tracking_uri: the MLflow tracking URI the report reads.

    Raises:
        DisentError: what is wrong with the store.
    """
    from studies.cli.checks import MLFLOW_TABLE, check_reachable, check_sqlite, sqlite_path

    path = sqlite_path(tracking_uri)
    if path is None:
        check_reachable(tracking_uri, "--tracking-uri")
    elif path.is_file():
        check_sqlite(path, "the MLflow store", MLFLOW_TABLE)


def log_report(results: StudyResults, out: Path) -> bool:
    """Log the report folder as artifacts of the study's parent run; a warning, not a failure, if not."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(results.tracking_uri).log_artifacts(results.parent_run_id, str(out), ARTIFACT_PATH)
    except (MlflowException, OSError) as exc:
        print(f"warning: the report is written but could not be logged to MLflow: {exc}", file=sys.stderr)
        return False
    return True
