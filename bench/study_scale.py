"""The Locatello et al. 2019 study at its real size, every trial real but tiny: does orchestration scale?

Locatello et al. (2019) trained 1,800 models per dataset (6 methods x 6 values x 50 seeds); the
catalog spec ``studies/catalog/locatello2019.yaml`` is that grid. This bench runs that spec through
the real command line (``disent-study run``, ``resume``, ``status``, ``report`` as subprocesses),
with every trial a real training, evaluation, checkpoint, figure set and MLflow run, shrunk only by
``--set`` overrides (``rehearsal_overrides``): 2 steps at batch 8, ``model.base_channels=2``, MIG
alone on the fast protocol, ``report_every`` larger than the run, one CPU per trial. The catalog's
dlib2019 protocol is comparable with published numbers and so demands real dSprites; the rehearsal
switches to the fast protocol on procedural dSprites and says so. ``--trials N`` runs a prefix of
the grid with the spec's own options: ``seeds=[0..k-1]`` and ``search.num_trials=M`` (M of the 36
configurations, M x k = N, as many configurations as possible); the default N = 1,800 is the whole
grid.

Stores (``--store``): ``sqlite``, the embedded default (Optuna and MLflow sqlite under the runs
root, embedded Ray), and ``cluster``: Optuna on a PostgreSQL server and MLflow on an ``mlflow
server`` backed by PostgreSQL, both started on 127.0.0.1 by ``bench/local_services.py`` (as for
``tests/studies/test_cluster_integration.py``; this server allows 200 connections), and stopped at
the end.

Half-way (when half the trials printed their ``done`` line) the driver's process group is killed
with SIGKILL and the study is continued with ``disent-study resume``; then ``status`` and
``report`` are timed, and every trial must be accounted for exactly once in Tune (one TERMINATED
trial per grid point and seed), Optuna (one COMPLETE trial per configuration; the configurations
lost after Tune's last snapshot are FAIL copies, counted) and MLflow (one FINISHED run per Tune
trial and per model number), with nothing left RUNNING. Printed, per store:

    study_efficiency[N]          sum of the trials' own times (Tune's time_total_s: data, model,
                                 training, evaluation, final files) / (driver wall x concurrent slots)
    per_trial_overhead_s[w]      over the first and the last 100 trials to finish (by their MLflow end
                                 time): (slots x the window's wall span - their own times) / 100; the
                                 span from the end of the trial before (the first trial's start) to
                                 the end of its last, less the dead time between the kill and the
                                 resumed driver's first trial start. Target: last_100 <= 1.2 x first_100
    driver_rss_mb[max]           VmRSS of the ``disent-study`` driver process, sampled every second;
                                 driver_tree_rss_mb[max] adds the processes it started (Ray's GCS,
                                 raylet and trial workers)
    sizes                        Optuna and MLflow databases, MLflow artifacts, Tune's experiment
                                 directory and its experiment_state file; Tune snapshots seen (the
                                 state file's mtime, polled every second) and their mean interval
    mlflow_rows_per_s            metric rows in MLflow / driver wall; beside it the rows of the real
                                 Locatello budget (each method's steps / report_every x the training
                                 keys per report that its rehearsal runs logged) and the rate 64 slots
                                 would log at ``--cluster-steps-per-s`` training steps per trial
    mlflow_capacity_rows_per_s   after the study, the rows per second the same tracking store takes
                                 from one client logging reports flat out (the driver logs from one
                                 thread), and how many trials at the real budget's rate that carries
    status_s, report_s, resume_s wall time of each command (report target: < 60 s)

    python bench/study_scale.py                               # all 1,800 trials, sqlite
    python bench/study_scale.py --trials 300 --store sqlite   # 30 configurations x seeds 0-9
    python bench/study_scale.py --trials 300 --store cluster  # PostgreSQL + mlflow server
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from local_services import PostgresServer, live_pids, mlflow_server, postgres_server

REPO = Path(__file__).resolve().parents[1]
CATALOG_SPEC = REPO / "studies" / "catalog" / "locatello2019.yaml"
GRID_CONFIGS, GRID_SEEDS = 36, 50
CLUSTER_SLOTS = 64
CAPACITY_S = 15.0


# ------------------------------------------------------------------------------------ the rehearsal


def grid_shape(trials: int) -> tuple[int, int]:
    """How many configurations and seeds make ``trials`` trials of the Locatello grid.

    Args:
        trials: the number of trials, 1 to 1,800.

    Returns:
        ``(configurations, seeds)`` with ``configurations x seeds = trials``, ``configurations``
        at most 36 and as large as possible (every method appears once it is 6 or more), ``seeds``
        at most 50.

    Raises:
        ValueError: no such split (``trials`` above 1,800, or a factor above 50 that is prime).
    """
    for configs in range(min(trials, GRID_CONFIGS), 0, -1):
        if trials % configs == 0 and trials // configs <= GRID_SEEDS:
            return configs, trials // configs
    raise ValueError(f"{trials} trials are not M configurations x k seeds with M <= {GRID_CONFIGS} "
                     f"and k <= {GRID_SEEDS}; choose another --trials")


def rehearsal_overrides(name: str, trials: int, slots: int) -> list[str]:
    """The ``--set`` assignments that make the catalog's Locatello study a tiny rehearsal.

    Args:
        name: the study's name.
        trials: how many trials of the grid to run (see ``grid_shape``).
        slots: trials running at once (``search.max_concurrent``), one CPU each.

    Returns:
        ``KEY=VALUE`` strings for ``disent-study run --set``.
    """
    configs, seeds = grid_shape(trials)
    sets = [
        f"name={name}",
        # dlib2019 is comparable with papers and refuses procedural data: the fast protocol is not
        "dataset.name=dsprites_procedural", "evaluation.protocol=fast", "evaluation.metrics=[mig]",
        "train.steps=2", "train.batch_size=8", "train.report_every=1000000", "train.prefetch=0",
        "model.base_channels=2",
        "resources.gpu=0", "resources.cpu=1", f"search.max_concurrent={slots}",
        f"seeds=[{', '.join(str(s) for s in range(seeds))}]",
    ]
    if configs < GRID_CONFIGS:
        sets.append(f"search.num_trials={configs}")
    return sets


def cli_command(*args: str) -> list[str]:
    """``disent-study ARGS`` from this interpreter's environment.

    Args:
        *args: the command's arguments.

    Returns:
        The argv.
    """
    binary = Path(sys.executable).parent / "disent-study"
    return [str(binary), *args] if binary.exists() else [sys.executable, "-m", "studies.cli", *args]


def cli_env() -> dict[str, str]:
    """The environment of the commands: an embedded Ray, not whatever cluster the shell points at."""
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return env


def _proc_table() -> dict[int, tuple[int, int]]:
    """``pid -> (ppid, VmRSS in kB)`` of every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        rss = int(fields.get("VmRSS", "0 kB").split()[0])
        table[int(entry)] = (int(fields.get("PPid", "0")), rss)
    return table


@dataclass
class DriverRun:
    """One ``disent-study run`` or ``resume`` process, watched from threads while it runs.

    Its output lines are timestamped (``done`` / ``FAILED`` lines count the ended trials), its
    VmRSS and that of its descendants sampled every second, and the mtime of Tune's
    ``experiment_state-*.json`` polled every second (each change is a snapshot).
    """

    argv: list[str]
    log: Path
    tune_dir: Path
    started: float = 0.0
    ended: float | None = None
    returncode: int | None = None
    ended_trials: list[float] = field(default_factory=list)
    rss_kb_max: int = 0
    tree_rss_kb_max: int = 0
    snapshots: list[float] = field(default_factory=list)
    process: subprocess.Popen | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> DriverRun:
        """Launch the command in a session of its own and start watching it.

        Returns:
            Itself.
        """
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, env=cli_env(),
                                        start_new_session=True)
        for target in (self._read, self._sample):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with open(self.log, "a") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                parts = line.split("]", 1)
                if len(parts) == 2 and parts[1].lstrip().startswith(("done ", "FAILED ")):
                    self.ended_trials.append(time.monotonic())

    def _sample(self) -> None:
        assert self.process is not None
        last_mtime = None
        while not self._stop.is_set() and self.process.poll() is None:
            table = _proc_table()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            tree, stack = 0, [self.process.pid]
            while stack:
                pid = stack.pop()
                tree += table.get(pid, (0, 0))[1]
                stack.extend(children.get(pid, []))
            self.rss_kb_max = max(self.rss_kb_max, table.get(self.process.pid, (0, 0))[1])
            self.tree_rss_kb_max = max(self.tree_rss_kb_max, tree)
            states = glob.glob(str(self.tune_dir / "experiment_state-*.json"))
            if states:
                with contextlib.suppress(OSError):
                    mtime = max(os.stat(p).st_mtime_ns for p in states)
                    if mtime != last_mtime:
                        last_mtime = mtime
                        self.snapshots.append(time.monotonic())
            self._stop.wait(1.0)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit (and its output to be read).

        Args:
            timeout: seconds to wait at most (None: no limit).

        Returns:
            Its exit status.
        """
        assert self.process is not None
        self.returncode = self.process.wait(timeout=timeout)
        self.ended = self.ended or time.monotonic()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        return self.returncode

    def kill_group(self) -> list[int]:
        """SIGKILL the process group (the driver and the embedded Ray it started).

        Returns:
            Pids of the group still alive 10 s later.
        """
        assert self.process is not None
        group = self.process.pid
        self.ended = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.wait(timeout=60)
        deadline = time.monotonic() + 10
        while True:
            left = live_pids(lambda pid, pgid: pgid == group)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    @property
    def wall_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started


def timed(argv: list[str], log: Path, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command to its end.

    Args:
        argv: the command.
        log: file its output is appended to.
        timeout: seconds at most.

    Returns:
        ``(wall seconds, the completed process)``.

    Raises:
        RuntimeError: it exited with a non-zero status.
    """
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=timeout,
                          stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - started
    with open(log, "a") as out:
        out.write(f"$ {shlex.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    return elapsed, done


# ------------------------------------------------------------------------------------------- stores


@dataclass
class Stores:
    """Where the study keeps its state: ``overrides`` for ``--set``, and how to measure them."""

    kind: str
    overrides: list[str]
    optuna_url: str | None = None
    mlflow_db_url: str | None = None
    artifacts: Path | None = None
    pg: PostgresServer | None = None
    tracking_uri: str | None = None


@contextlib.contextmanager
def study_stores(kind: str, workdir: Path) -> Iterator[Stores]:
    """The stores of one rehearsal: embedded sqlite, or PostgreSQL + an mlflow server on PostgreSQL.

    Args:
        kind: ``sqlite`` or ``cluster``.
        workdir: the rehearsal's directory.

    Yields:
        The stores.
    """
    if kind == "sqlite":
        yield Stores(kind, [])
        return
    with postgres_server(max_connections=200) as pg:
        optuna_url = pg.create_database("optuna")
        mlflow_db = pg.create_database("mlflow")
        with mlflow_server(mlflow_db, workdir) as mlflow:
            yield Stores(kind, [f"storage.optuna={optuna_url}", f"tracking.mlflow_uri={mlflow.url}"],
                         optuna_url=optuna_url, mlflow_db_url=mlflow_db, artifacts=mlflow.artifacts, pg=pg,
                         tracking_uri=mlflow.url)


def tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 if missing).

    Args:
        path: a file or directory.

    Returns:
        The sum of the file sizes.
    """
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def store_sizes(stores: Stores, root: Path, directory: Path) -> dict[str, int]:
    """Bytes of the Optuna and MLflow databases, the artifacts and Tune's experiment.

    Args:
        stores: the rehearsal's stores.
        root: the runs root.
        directory: the study directory.

    Returns:
        ``{what: bytes}``.
    """
    sizes = {}
    if stores.pg is None:
        sizes["optuna_db"] = tree_bytes(directory / "optuna.db")
        sizes["mlflow_db"] = tree_bytes(root / "mlflow.db")
        sizes["mlflow_artifacts"] = tree_bytes(root / "mlartifacts")
    else:
        for name in ("optuna", "mlflow"):
            connection = stores.pg.connect(name)
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_database_size(current_database())")
                    sizes[f"{name}_db"] = int(cursor.fetchone()[0])
            finally:
                connection.close()
        sizes["mlflow_artifacts"] = tree_bytes(stores.artifacts) if stores.artifacts else 0
    sizes["tune_dir"] = tree_bytes(directory / "tune")
    sizes["tune_experiment_state"] = sum(tree_bytes(Path(p)) for p in
                                         glob.glob(str(directory / "tune" / "experiment_state-*.json")))
    return sizes


def metric_rows(stores: Stores, root: Path) -> int:
    """Metric rows in the MLflow database (``metrics`` table: one row per key, step and value).

    Args:
        stores: the rehearsal's stores (the runs root holds only this study).
        root: the runs root.

    Returns:
        The number of rows.
    """
    query = "SELECT count(*) FROM metrics"
    if stores.pg is None:
        with contextlib.closing(sqlite3.connect(root / "mlflow.db")) as connection:
            return int(connection.execute(query).fetchone()[0])
    connection = stores.pg.connect("mlflow")
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


# ------------------------------------------------------------------------------ accounting and times


@dataclass
class Accounting:
    """Every trial of the rehearsal as Tune, Optuna and MLflow hold it after the resume."""

    trials: int
    configurations: int
    tune_status: Counter
    tune_points: int
    optuna_states: Counter
    optuna_complete_points: int
    mlflow_status: Counter
    mlflow_finished_ids_match_tune: bool
    mlflow_finished_model_nums: int
    mlflow_reasons: Counter
    parent_status: str
    table_rows: int
    own_s: dict[str, float]
    ends_s: dict[str, float]
    starts_s: dict[str, float]
    training_keys: dict[str, int]

    def problems(self) -> list[str]:
        """What breaks "every trial exactly once, nothing RUNNING".

        Returns:
            One line per problem (empty: none).
        """
        n, m = self.trials, self.configurations
        found = []
        if self.tune_status != Counter({"TERMINATED": n}):
            found.append(f"tune trials {dict(self.tune_status)}, expected {n} TERMINATED")
        if self.tune_points != n:
            found.append(f"tune: {self.tune_points} distinct (grid point, seed) pairs, expected {n}")
        if set(self.optuna_states) - {"COMPLETE", "FAIL"} or self.optuna_states["COMPLETE"] != m:
            found.append(f"optuna trials {dict(self.optuna_states)}, expected {m} COMPLETE (and lost FAIL)")
        if self.optuna_complete_points != m:
            found.append(f"optuna: {self.optuna_complete_points} distinct COMPLETE grid points, expected {m}")
        if self.mlflow_status.get("FINISHED", 0) != n or self.mlflow_status.get("RUNNING", 0):
            found.append(f"mlflow runs {dict(self.mlflow_status)}, expected {n} FINISHED, none RUNNING")
        if not self.mlflow_finished_ids_match_tune:
            found.append("mlflow: the FINISHED runs' trial ids are not Tune's trial ids")
        if self.mlflow_finished_model_nums != n:
            found.append(f"mlflow: {self.mlflow_finished_model_nums} distinct model numbers among FINISHED "
                         f"runs, expected {n}")
        if self.parent_status != "FINISHED":
            found.append(f"mlflow: the study's parent run is {self.parent_status}")
        if self.table_rows != n:
            found.append(f"results.parquet has {self.table_rows} rows, expected {n}")
        return found


def account(directory: Path, trials: int) -> Accounting:
    """Read every trial of a finished rehearsal from Tune, Optuna, MLflow and the results table.

    Args:
        directory: the study directory.
        trials: how many trials the rehearsal ran.

    Returns:
        The counts, and per trial id its own time (Tune's ``time_total_s``) and its MLflow run's
        start and end (seconds since the epoch).
    """
    import optuna
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from ray import tune
    from ray.tune.search.repeater import TRIAL_INDEX

    from studies.results import TRIAL_TAG, is_training_key, nested_runs
    from studies.spec.space import GRID_POINT
    from studies.study_dir import StudyState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    state = StudyState.load(directory)
    analysis = tune.ExperimentAnalysis(state.tune_path)
    tune_trials = analysis.trials
    own = {t.trial_id: float((t.last_result or {}).get("time_total_s", 0.0)) for t in tune_trials}
    points = {(t.config.get(GRID_POINT), t.config.get(TRIAL_INDEX, 0)) for t in tune_trials}
    study = optuna.load_study(study_name=state.optuna_study, storage=state.optuna_storage)
    optuna_trials = study.get_trials(deepcopy=False)
    complete_points = {t.params.get(GRID_POINT) for t in optuna_trials if t.state.name == "COMPLETE"}
    client = MlflowClient(state.tracking_uri)
    runs = nested_runs(client, state.experiment_id, state.parent_run_id)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    keys: dict[str, int] = {}
    for run in finished:
        keys.setdefault(run.data.tags.get("method", "?"),
                        sum(is_training_key(k) for k in run.data.metrics))
    return Accounting(
        trials=trials,
        configurations=grid_shape(trials)[0],
        tune_status=Counter(t.status for t in tune_trials),
        tune_points=len(points),
        optuna_states=Counter(t.state.name for t in optuna_trials),
        optuna_complete_points=len(complete_points),
        mlflow_status=Counter(r.info.status for r in runs),
        mlflow_finished_ids_match_tune=(
            sorted(r.data.tags.get(TRIAL_TAG, "") for r in finished) == sorted(own)
        ),
        mlflow_finished_model_nums=len({r.data.tags.get("dlib_model_num") for r in finished}),
        mlflow_reasons=Counter(r.data.tags.get("failure_reason", "")[:60] for r in runs
                               if r.info.status != "FINISHED"),
        parent_status=client.get_run(state.parent_run_id).info.status,
        table_rows=len(pd.read_parquet(directory / "results.parquet")),
        own_s=own,
        ends_s={r.data.tags[TRIAL_TAG]: r.info.end_time / 1000 for r in finished if r.info.end_time},
        starts_s={r.data.tags[TRIAL_TAG]: r.info.start_time / 1000 for r in finished},
        training_keys=keys,
    )


def window_overhead(accounting: Accounting, slots: int, size: int, last: bool,
                    dead: tuple[float, float] | None) -> float:
    """Per-trial overhead of a window of trials, in the order they finished.

    Args:
        accounting: the rehearsal's trials.
        slots: trials that could run at once.
        size: the window's trials (fewer if the rehearsal has fewer).
        last: the last ``size`` trials to finish, else the first.
        dead: ``(from, to)`` epoch seconds in which no driver ran (the kill to the resumed driver's
            first trial start), left out of the span; None: none.

    Returns:
        ``(slots x wall span - sum of own times) / trials`` in seconds.
    """
    order = sorted(accounting.ends_s, key=accounting.ends_s.get)
    size = min(size, len(order))
    begin = len(order) - size if last else 0
    window = order[begin:begin + size]
    origin = (accounting.ends_s[order[begin - 1]] if begin > 0 else min(accounting.starts_s.values()))
    end = accounting.ends_s[window[-1]]
    span = end - origin
    if dead is not None:
        span -= max(0.0, min(end, dead[1]) - max(origin, dead[0]))
    own = sum(accounting.own_s.get(t, 0.0) for t in window)
    return (slots * span - own) / size


def budget_rows(training_keys: dict[str, int]) -> tuple[float, float, int]:
    """Metric rows per trial of the real Locatello budget, from the catalog spec.

    Args:
        training_keys: per method, the training keys one report logs (from the rehearsal's runs).

    Returns:
        ``(mean rows per trial, mean training steps per trial, report_every)`` over the grid's
        configurations (FactorVAE trains half the steps).
    """
    from studies.spec import load_spec
    from studies.spec.space import GRID_POINT, SearchSpace

    spec = load_spec(CATALOG_SPEC, [])
    space = SearchSpace(spec)
    rows, steps = [], []
    for index, point in enumerate(space.grid):
        config = space.train_config({**point, GRID_POINT: index}, spec.seeds[0])
        keys = training_keys.get(config.method.name, max(training_keys.values(), default=0))
        rows.append(config.train.steps // config.train.report_every * keys)
        steps.append(config.train.steps)
    return sum(rows) / len(rows), sum(steps) / len(steps), config.train.report_every


# ------------------------------------------------------------------------------------------- driver


@dataclass
class Rehearsal:
    """What one rehearsal measured."""

    trials: int
    store: str
    slots: int
    run: DriverRun
    resume: DriverRun | None
    left_after_kill: list[int]
    resume_first_end_s: float | None
    status_s: float
    status_lines: list[str]
    report_s: float
    accounting: Accounting
    sizes: dict[str, int]
    rows: int
    dead: tuple[float, float] | None
    wall_to_epoch: float
    capacity_rows_per_s: float = 0.0


def rehearse(trials: int, store: str, workdir: Path, slots: int = 2, kill_at: float = 0.5,
             timeout_s: float = 6 * 3600, capacity_s: float = CAPACITY_S) -> Rehearsal:
    """Run the tiny Locatello study: run, kill the driver half-way, resume, status, report, account.

    Args:
        trials: trials of the grid to run (``grid_shape``).
        store: ``sqlite`` or ``cluster``.
        workdir: an empty directory for the runs root, logs and services.
        slots: trials at once (one CPU each).
        kill_at: the share of trials done when the driver is killed (0 or 1: no kill).
        timeout_s: seconds each command may take.
        capacity_s: seconds of ``logging_capacity``, once the study is measured.

    Returns:
        The measurements.

    Raises:
        RuntimeError: a command failed, or the driver ended before the kill.
    """
    name = f"locatello2019_scale_{trials}_{store}"
    root = workdir / "runs"
    directory = root / name
    log = workdir / "cli.log"
    with study_stores(store, workdir) as stores:
        sets = rehearsal_overrides(name, trials, slots) + stores.overrides
        argv = cli_command("run", str(CATALOG_SPEC), "--root", str(root), "--no-report",
                           *[a for s in sets for a in ("--set", s)])
        run = DriverRun(argv, log, directory / "tune").start()
        kill_after = int(trials * kill_at) if 0 < kill_at < 1 else None
        left: list[int] = []
        resume = None
        dead = None
        offset = time.time() - time.monotonic()
        if kill_after:
            deadline = time.monotonic() + timeout_s
            while len(run.ended_trials) < kill_after:
                if run.process is not None and run.process.poll() is not None:
                    run.wait()
                    raise RuntimeError(f"the study exited {run.returncode} before {kill_after} trials "
                                       f"ended; see {log}")
                if time.monotonic() > deadline:
                    run.kill_group()
                    raise RuntimeError(f"timed out before {kill_after} trials ended")
                time.sleep(0.2)
            left = run.kill_group()
            resume = DriverRun(cli_command("resume", str(directory), "--no-report"), log,
                               directory / "tune").start()
            if resume.wait(timeout=timeout_s) != 0:
                raise RuntimeError(f"`disent-study resume` exited {resume.returncode}; see {log}")
        elif run.wait(timeout=timeout_s) != 0:
            raise RuntimeError(f"`disent-study run` exited {run.returncode}; see {log}")
        status_s, status = timed(cli_command("status", str(directory)), log)
        report_s, _ = timed(cli_command("report", str(directory)), log)
        accounting = account(directory, trials)
        resume_first = None
        if resume is not None:
            killed = run.ended or run.started
            later = [s for s in accounting.starts_s.values() if s > killed + offset]
            if later:
                dead = (killed + offset, min(later))
            resume_first = (resume.ended_trials[0] - resume.started) if resume.ended_trials else None
        lines = [line for line in status.stdout.splitlines() if line.startswith(("mlflow runs", "optuna"))]
        measured = Rehearsal(trials, store, slots, run, resume, left, resume_first, status_s, lines,
                             report_s, accounting, store_sizes(stores, root, directory),
                             metric_rows(stores, root), dead, offset)
        keys = max(accounting.training_keys.values(), default=19)
        tracking_uri = stores.tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
        measured.capacity_rows_per_s = logging_capacity(tracking_uri, keys, capacity_s)
        return measured


def logging_capacity(tracking_uri: str, keys: int, seconds: float = CAPACITY_S) -> float:
    """Metric rows per second the tracking store takes from one client logging flat out.

    One report after another, each ``keys`` metrics in one ``log_batch``, as the study driver's
    tracker logs them (from one thread), into a run of a scratch experiment (after the study's
    stores were measured).

    Args:
        tracking_uri: the study's MLflow tracking URI.
        keys: metrics per report.
        seconds: how long to log.

    Returns:
        The rows logged per second.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment(f"logging-capacity-{os.getpid()}-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    rows, step, started = 0, 0, time.monotonic()
    while time.monotonic() - started < seconds:
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(f"loss/term{i}", float(step + i), now, step)
                                          for i in range(keys)])
        rows, step = rows + keys, step + 1
    elapsed = time.monotonic() - started
    client.set_terminated(run_id)
    return rows / elapsed


def print_rehearsal(r: Rehearsal, cluster_steps_per_s: float) -> None:
    """Print the measurements of one rehearsal (see the module docstring).

    Args:
        r: the rehearsal.
        cluster_steps_per_s: training steps per second of one trial on the imagined 64-slot cluster.
    """
    n, a, tag = r.trials, r.accounting, f"[{r.trials}]"
    wall = r.run.wall_s + (r.resume.wall_s if r.resume else 0.0)
    own = sum(a.own_s.values())
    mb = 1024 * 1024
    print(f"\n== store {r.store}: {n} trials ({a.configurations} configurations x {n // a.configurations} "
          f"seeds), {r.slots} slots; procedural dSprites, fast protocol (rehearsal, not comparable)")
    if r.resume is None:
        print(f"driver wall: run {r.run.wall_s:.1f} s (not killed)")
    else:
        print(f"driver wall: run {r.run.wall_s:.1f} s (killed after {len(r.run.ended_trials)} trials), "
              f"resume {r.resume.wall_s:.1f} s; processes of the killed group left: {len(r.left_after_kill)}")
    print(f"trials' own time: {own:.1f} s, mean {own / max(len(a.own_s), 1):.2f} s")
    print(f"study_efficiency{tag}: {own / (wall * r.slots):.3f}")
    first = window_overhead(a, r.slots, 100, last=False, dead=r.dead)
    last = window_overhead(a, r.slots, 100, last=True, dead=r.dead)
    print(f"per_trial_overhead_s[first_100]: {first:.2f}")
    ratio = last / first if first > 0 else float("nan")
    print(f"per_trial_overhead_s[last_100]: {last:.2f}  (ratio {ratio:.2f}, target <= 1.2)")
    runs = [x for x in (r.run, r.resume) if x is not None]
    print(f"driver_rss_mb[max]: {max(x.rss_kb_max for x in runs) / 1024:.0f}")
    print(f"driver_tree_rss_mb[max]: {max(x.tree_rss_kb_max for x in runs) / 1024:.0f}  (with the Ray "
          "processes it started: GCS, raylet, trial workers)")
    for key, value in r.sizes.items():
        print(f"size_mb[{key}]: {value / mb:.2f}")
    snaps = [s for x in runs for s in x.snapshots]
    gaps = [b - a_ for x in runs for a_, b in zip(x.snapshots, x.snapshots[1:], strict=False)]
    print(f"tune_snapshots: {len(snaps)} seen, mean interval {sum(gaps) / len(gaps) if gaps else 0:.1f} s")
    per_trial, steps, report_every = budget_rows(a.training_keys)
    reports_per_s = cluster_steps_per_s / report_every
    cluster_rate = CLUSTER_SLOTS * per_trial / (steps / cluster_steps_per_s)
    print(f"mlflow_rows_per_s{tag}: {r.rows / wall:.1f}  ({r.rows} rows in {wall:.0f} s; keys per report "
          f"{dict(sorted(a.training_keys.items()))})")
    print(f"mlflow_rows_per_s[locatello budget, {CLUSTER_SLOTS} slots at {cluster_steps_per_s:g} steps/s]: "
          f"{cluster_rate:.1f}  ({per_trial:.0f} rows per trial, "
          f"{per_trial * GRID_CONFIGS * GRID_SEEDS / 1e6:.2f}M for the 1,800 trials; "
          f"{reports_per_s:.3f} reports/s per trial)")
    per_trial_rate = cluster_rate / CLUSTER_SLOTS
    print(f"mlflow_capacity_rows_per_s: {r.capacity_rows_per_s:.0f}  (one client logging reports of "
          f"{max(a.training_keys.values(), default=19)} rows flat out, as the driver does); "
          "concurrent trials it carries at the locatello budget: "
          f"{r.capacity_rows_per_s / per_trial_rate:.0f} ({per_trial_rate:.2f} rows/s per trial)")
    print(f"status_s{tag}: {r.status_s:.1f}")
    print(f"report_s{tag}: {r.report_s:.1f}  (target < 60)")
    if r.resume is not None:
        first_end = f"{r.resume_first_end_s:.1f}" if r.resume_first_end_s is not None else "-"
        print(f"resume_s{tag}: {r.resume.wall_s:.1f}  (first trial ended {first_end} s after the start)")
    print(f"accounted: tune {dict(a.tune_status)} ({a.tune_points} grid point x seed pairs); optuna "
          f"{dict(a.optuna_states)} ({a.optuna_complete_points} grid points COMPLETE); mlflow "
          f"{dict(a.mlflow_status)}, parent {a.parent_status}; results.parquet {a.table_rows} rows")
    for reason, count in a.mlflow_reasons.items():
        print(f"  mlflow runs not FINISHED: {count} x {reason!r}")
    for line in r.status_lines:
        print(f"  status: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=GRID_CONFIGS * GRID_SEEDS)
    parser.add_argument("--store", choices=("sqlite", "cluster"), default="sqlite")
    parser.add_argument("--slots", type=int, default=2, help="trials at once, one CPU each")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of trials done when the driver is "
                        "killed (0: no kill)")
    parser.add_argument("--cluster-steps-per-s", type=float, default=100.0,
                        help="training steps per second of one trial on the imagined 64-slot cluster")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    grid_shape(args.trials)
    workdir = Path(tempfile.mkdtemp(prefix="study-scale-"))
    print(f"rehearsal of {CATALOG_SPEC.relative_to(REPO)}: {args.trials} trials, store {args.store}, "
          f"work directory {workdir}", flush=True)
    print("data: procedural dSprites under the fast protocol (the catalog's dlib2019 protocol needs real "
          "dSprites); the numbers are not comparable with papers", flush=True)
    try:
        rehearsal = rehearse(args.trials, args.store, workdir, args.slots, args.kill_at)
        print_rehearsal(rehearsal, args.cluster_steps_per_s)
        problems = rehearsal.accounting.problems()
        print("exactly once, nothing RUNNING: " + ("yes" if not problems else "NO"))
        for problem in problems:
            print(f"  {problem}")
        if problems:
            raise SystemExit(1)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
