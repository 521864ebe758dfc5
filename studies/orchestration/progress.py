"""The live progress display of ``disent-study run``: a ``tune.Callback`` printing plain lines.

One line when a trial ends (its configuration, seed, objective and wall time), and the study's
state: trials done / running / failed / pending, the best objective so far, the pace and the time
left. On a terminal that state is a live tqdm bar under the trial lines (its rate and ETA are
tqdm's), redrawn every ``BAR_REFRESH_S``. In a log (``ray job logs``, CI, a file) it is a status line
with the trials ended per hour by this driver and the time left at that rate, printed only when
trials started or ended since the last one, at most every ``STATUS_EVERY_S``, or after
``LOG_STATUS_EVERY_S`` (a multi-day study would otherwise print thousands of identical lines).
``quiet`` keeps the failures and the closing summary only.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search.repeater import TRIAL_INDEX
from tqdm import tqdm

from studies.orchestration.tracking import failure_reason
from studies.spec import StudySpec
from studies.spec.space import GRID_POINT, METHOD

STATUS_EVERY_S = 15.0
LOG_STATUS_EVERY_S = 600.0
BAR_REFRESH_S = 1.0


def describe(config: dict[str, Any], seeds: list[int]) -> str:
    """``beta_vae beta=3.2 seed 1`` from a trial config.

    Args:
        config: a Tune trial's config: ``method``, the searched values by Optuna name and
            ``__trial_index__`` (``TRIAL_INDEX``, the seed's index; 0 when absent).
        seeds: the spec's seeds, indexed by the trial index.

    Returns:
        The method, each searched value as ``name=value`` (without the method's prefix; floats to 4
        significant digits) and the seed.
    """
    method = config.get(METHOD, "?")
    params = " ".join(
        f"{k.split('.', 1)[1] if k.startswith(method + '.') else k}={_short(v)}"
        for k, v in config.items() if k not in (METHOD, TRIAL_INDEX, GRID_POINT)
    )
    return f"{method} {params} seed {seeds[config.get(TRIAL_INDEX, 0)]}".replace("  ", " ")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress(tune.Callback):
    """Prints trial endings and a periodic status line (see the module docstring)."""

    def __init__(self, spec: StudySpec, total: int, quiet: bool = False) -> None:
        self.spec = spec
        self.total = total
        self.quiet = quiet
        self.objective = spec.objectives[0]
        self.best: tuple[float, str] | None = None
        self.last_status = 0.0
        self.last_counts: Counter[str] | None = None
        self.ended_here = 0
        self.started = time.monotonic()
        self.terminal = sys.stdout.isatty()
        self.bar: tqdm | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "bar": None}  # a live bar does not travel in Tune's snapshot

    def _print(self, text: str, always: bool = False) -> None:
        if self.quiet and not always:
            return
        elapsed = time.monotonic() - self.started
        line = f"[{elapsed:6.0f}s] {text}"
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, file=sys.stdout, flush=True)

    def _show_bar(self, trials: list) -> None:
        counts = Counter(t.status for t in trials)
        ended = counts["TERMINATED"] + counts["ERROR"]
        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=ended, unit="trial", file=sys.stdout,
                            dynamic_ncols=True, smoothing=0.1, desc=self.spec.name)
        self.bar.update(ended - self.bar.n)
        best = f"{self.best[0]:.4f}" if self.best else "-"
        self.bar.set_postfix_str(f"{counts['RUNNING']} running, {counts['ERROR']} failed, "
                                 f"best {self.objective.metric} {best}")

    def _pace(self, left: int) -> str:
        elapsed = time.monotonic() - self.started
        if not self.ended_here or elapsed <= 0:
            return ""
        rate = self.ended_here / elapsed
        eta = left / rate
        hours, rest = divmod(int(eta), 3600)
        return f" | {rate * 3600:.0f} trials/h, about {hours}h{rest // 60:02d}m left"

    def _status(self, trials: list) -> str:
        counts = Counter(t.status for t in trials)
        pending = max(self.total - counts["TERMINATED"] - counts["ERROR"] - counts["RUNNING"], 0)
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        steps = [str((t.last_result or {}).get("step", 0)) for t in trials if t.status == "RUNNING"]
        at = f" (at step {', '.join(steps)} of {self.spec.steps})" if steps else ""
        return (f"trials: {counts['TERMINATED']} done, {counts['RUNNING']} running{at}, "
                f"{counts['ERROR']} failed, "
                f"{pending} pending of {self.total} | best {self.objective.metric}: {best}"
                + self._pace(pending + counts["RUNNING"]))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        """Print the status line when ``STATUS_EVERY_S`` seconds have passed since the last one.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment.
            **info: further keyword arguments Tune passes (unused).
        """
        now = time.monotonic()
        if self.terminal and not self.quiet:
            if now - self.last_status >= BAR_REFRESH_S:
                self.last_status = now
                self._show_bar(trials)
            return
        if now - self.last_status < STATUS_EVERY_S:
            return
        counts = Counter(t.status for t in trials)
        if counts != self.last_counts or now - self.last_status >= LOG_STATUS_EVERY_S:
            self.last_status, self.last_counts = now, counts
            self._print(self._status(trials))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Print the ended trial's line and keep the best finite objective so far.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the ended Tune trial (``trial_id``, ``config``, ``last_result``).
            **info: further keyword arguments Tune passes (unused).
        """
        result = trial.last_result or {}
        value = result.get(self.objective.metric, math.nan)
        label = describe(trial.config, self.spec.seeds)
        if isinstance(value, float) and math.isfinite(value):
            better = self.best is None or (
                value > self.best[0] if self.objective.mode == "max" else value < self.best[0]
            )
            if better:
                self.best = (value, label)
        self.ended_here += 1
        seconds = result.get("time_total_s", 0.0)
        score = f"{self.objective.metric}={value:.4f}"
        self._print(f"done   {trial.trial_id}  {label}  {score}  ({seconds:.0f} s)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Print the failed trial's line with its failure reason.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the failed Tune trial.
            **info: further keyword arguments Tune passes (unused).
        """
        label = describe(trial.config, self.spec.seeds)
        self.ended_here += 1
        self._print(f"FAILED {trial.trial_id}  {label}: {failure_reason(trial)}", always=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Close the bar, or print the last status line.

        Args:
            trials: every Tune trial of the experiment.
            **info: further keyword arguments Tune passes (unused).
        """
        if self.bar is not None:
            self._show_bar(trials)
            self.bar.close()
            self.bar = None
            return
        self._print(self._status(trials))

    def summary(self, grid: Any, state: Any, directory: Path) -> None:
        """The closing lines: the best trial and where to browse the study.

        Args:
            grid: the ``tune.ResultGrid`` of the run.
            state: the study's ``StudyState`` (its ``root`` is given to ``disent-study ui``).
            directory: the study directory, where ``results.parquet`` is.
        """
        objective = self.objective
        print(f"\nstudy {self.spec.name}: {len(grid)} trials, {grid.num_errors} failed")
        try:
            best = grid.get_best_result(objective.metric, objective.mode)
        except RuntimeError:
            best = None
        if best is not None and best.metrics and objective.metric in best.metrics:
            print(f"best trial: {describe(best.config, self.spec.seeds)}  "
                  f"{objective.metric}={best.metrics[objective.metric]:.4f}")
            print(f"  checkpoint and figures: {best.checkpoint.path if best.checkpoint else '-'}")
        print(f"results table: {directory / 'results.parquet'}")
        runs_table = f"#/experiments/{state.experiment_id}/runs"
        if state.tracking_uri.startswith(("http://", "https://")):
            print(f"browse it:     {state.tracking_uri.rstrip('/')}/{runs_table}   "
                  f"(MLflow experiment {self.spec.experiment_name})")
        else:
            print(f"browse it:     disent-study ui --root {state.root}, then "
                  f"http://127.0.0.1:5000/{runs_table}   (MLflow experiment {self.spec.experiment_name})")
        print(f"trial table:   disent-study status {directory}")
