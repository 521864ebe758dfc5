"""The live progress display of ``disent-study run``: a ``tune.Callback`` printing plain lines.

It counts members (``members.py``: one configuration with one seed, what a user calls a trial), so a
population trial of several members counts as several. One line when a member ends (its
configuration, seed, objective and wall time; a population member that diverges gets its FAILED line
when its report first says so), and the study's state: members done / running / failed / pending,
the best objective so far, the pace and the time left. On a terminal that state is a live tqdm bar
under the member lines (its rate and ETA are tqdm's), redrawn every ``BAR_REFRESH_S``. In a log
(``ray job logs``, CI, a file) it is a status line with the members ended per hour by this driver and
the time left at that rate, printed only when members started or ended since the last one, at most
every ``STATUS_EVERY_S``, or after ``LOG_STATUS_EVERY_S`` (a multi-day study would otherwise print
thousands of identical lines). ``quiet`` keeps the failures and the closing summary only.
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

from studies.orchestration.members import (
    Member,
    is_population,
    member_diverged,
    member_files,
    member_result,
    trial_members,
)
from studies.orchestration.tracking import failure_reason
from studies.results import FAILURE, STEP, is_number
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


def member_states(trials: list) -> Counter[str]:
    """How many members of the trials are done, running, failed and pending (by Tune's view).

    Args:
        trials: Tune trials (``trial_id``, ``config``, ``status``, ``last_result``).

    Returns:
        A count per state: each member of a TERMINATED trial is ``done`` and of an ERROR trial
        ``failed``, of a RUNNING trial ``running``, else ``pending``; a population member whose last
        result says it diverged is ``failed`` whatever its trial's status.
    """
    counts: Counter[str] = Counter()
    for trial in trials:
        state = _STATES.get(trial.status, "pending")
        config = getattr(trial, "config", None)
        if not is_population(config):
            counts[state] += 1
            continue
        for member in trial_members(getattr(trial, "trial_id", ""), config):
            diverged = member_diverged(member_result(trial.last_result, member))
            counts["failed" if diverged else state] += 1
    return counts


_STATES = {"TERMINATED": "done", "ERROR": "failed", "RUNNING": "running"}


class Progress(tune.Callback):
    """Prints member endings and a periodic status line (see the module docstring)."""

    def __init__(self, spec: StudySpec, total: int, quiet: bool = False) -> None:
        self.spec = spec
        self.total = total
        self.quiet = quiet
        self.objective = spec.objectives[0]
        self.best: tuple[float, str] | None = None
        self.last_status = 0.0
        self.last_counts: Counter[str] | None = None
        self.ended_here = 0
        self.diverged: set[str] = set()
        """Population members whose FAILED line is printed."""
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
        counts = member_states(trials)
        ended = counts["done"] + counts["failed"]
        if self.bar is None:
            self.bar = tqdm(total=self.total, initial=ended, unit="trial", file=sys.stdout,
                            dynamic_ncols=True, smoothing=0.1, desc=self.spec.name)
        self.bar.update(ended - self.bar.n)
        best = f"{self.best[0]:.4f}" if self.best else "-"
        self.bar.set_postfix_str(f"{counts['running']} running, {counts['failed']} failed, "
                                 f"best {self.objective.metric} {best}")

    def _pace(self, left: int) -> str:
        elapsed = time.monotonic() - self.started
        if not self.ended_here or elapsed <= 0:
            return ""
        rate = self.ended_here / elapsed
        eta = left / rate
        hours, rest = divmod(int(eta), 3600)
        return f" | {rate * 3600:.0f} trials/h, about {hours}h{rest // 60:02d}m left"

    def _status(self, trials: list, counts: Counter[str] | None = None) -> str:
        counts = counts if counts is not None else member_states(trials)
        pending = max(self.total - counts["done"] - counts["failed"] - counts["running"], 0)
        best = f"{self.best[0]:.4f} ({self.best[1]})" if self.best else "-"
        steps = [str((t.last_result or {}).get("step", 0)) for t in trials if t.status == "RUNNING"]
        at = f" (at step {', '.join(steps)} of {self.spec.steps})" if steps else ""
        return (f"trials: {counts['done']} done, {counts['running']} running{at}, "
                f"{counts['failed']} failed, "
                f"{pending} pending of {self.total} | best {self.objective.metric}: {best}"
                + self._pace(pending + counts["running"]))

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
        counts = member_states(trials)
        if counts != self.last_counts or now - self.last_status >= LOG_STATUS_EVERY_S:
            self.last_status, self.last_counts = now, counts
            self._print(self._status(trials, counts))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Print a FAILED line for a population member whose report first says it diverged.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the reporting Tune trial.
            result: its report.
            **info: further keyword arguments Tune passes (unused).
        """
        if is_population(trial.config):
            for member in trial_members(trial.trial_id, trial.config):
                self._diverged(member, member_result(result, member))

    def _diverged(self, member: Member, result: dict[str, Any]) -> bool:
        """Whether a population member diverged; its FAILED line is printed the first time."""
        if member.population is None or not member_diverged(result):
            return False
        if member.member_id not in self.diverged:
            self.diverged.add(member.member_id)
            self.ended_here += 1
            reason = result.get(FAILURE) or f"diverged at step {result.get(STEP, '?')}"
            self._print(f"FAILED {member.member_id}  {describe(member.config, self.spec.seeds)}: {reason}",
                        always=True)
        return True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Print each member's line and keep the best finite objective so far.

        A member that diverged gets a FAILED line with its reason (unless printed already).

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the ended Tune trial (``trial_id``, ``config``, ``last_result``).
            **info: further keyword arguments Tune passes (unused).
        """
        for member in trial_members(trial.trial_id, trial.config):
            result = member_result(trial.last_result, member)
            if self._diverged(member, result):
                continue
            value = result.get(self.objective.metric, math.nan)
            label = describe(member.config, self.spec.seeds)
            if isinstance(value, float) and math.isfinite(value):
                better = self.best is None or (
                    value > self.best[0] if self.objective.mode == "max" else value < self.best[0]
                )
                if better:
                    self.best = (value, label)
            self.ended_here += 1
            seconds = result.get("time_total_s", 0.0)
            score = f"{self.objective.metric}={value:.4f}"
            self._print(f"done   {member.member_id}  {label}  {score}  ({seconds:.0f} s)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Print a FAILED line with the trial's failure reason for each of its members not diverged.

        Args:
            iteration: Tune's control-loop iteration (unused).
            trials: every Tune trial of the experiment (unused).
            trial: the failed Tune trial.
            **info: further keyword arguments Tune passes (unused).
        """
        reason = None
        for member in trial_members(trial.trial_id, trial.config):
            if self._diverged(member, member_result(trial.last_result, member)):
                continue
            reason = reason or failure_reason(trial)
            self.ended_here += 1
            self._print(f"FAILED {member.member_id}  {describe(member.config, self.spec.seeds)}: {reason}",
                        always=True)

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
        """The closing lines: the best member and where to browse the study.

        Args:
            grid: the ``tune.ResultGrid`` of the run.
            state: the study's ``StudyState`` (its ``root`` is given to ``disent-study ui``).
            directory: the study directory, where ``results.parquet`` is.
        """
        objective = self.objective
        members = failed = 0
        best: tuple[float, Member, Any] | None = None
        for result in grid:
            metrics = result.metrics or {}
            for member in trial_members(str(metrics.get("trial_id", "")), result.config):
                members += 1
                own = member_result(metrics, member)
                if result.error is not None or (member.population is not None and member_diverged(own)):
                    failed += 1
                    continue
                value = own.get(objective.metric)
                if not is_number(value):
                    continue
                if best is None or (value > best[0] if objective.mode == "max" else value < best[0]):
                    best = (float(value), member, result)
        print(f"\nstudy {self.spec.name}: {members} trials, {failed} failed")
        if best is not None:
            value, member, result = best
            print(f"best trial: {describe(member.config, self.spec.seeds)}  {objective.metric}={value:.4f}")
            where = member_files(result.checkpoint.path, member) if result.checkpoint else "-"
            print(f"  checkpoint and figures: {where}")
        print(f"results table: {directory / 'results.parquet'}")
        runs_table = f"#/experiments/{state.experiment_id}/runs"
        if state.tracking_uri.startswith(("http://", "https://")):
            print(f"browse it:     {state.tracking_uri.rstrip('/')}/{runs_table}   "
                  f"(MLflow experiment {self.spec.experiment_name})")
        else:
            print(f"browse it:     disent-study ui --root {state.root}, then "
                  f"http://127.0.0.1:5000/{runs_table}   (MLflow experiment {self.spec.experiment_name})")
        print(f"trial table:   disent-study status {directory}")
