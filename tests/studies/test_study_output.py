"""What ``disent-study run`` prints and leaves: its own lines, the libraries' preambles quiet unless
--verbose, the report at the end unless --no-report, and in a log a status line only when trials
changed (or after a long while)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from study_helpers import TINY, run_cli, write_spec

from studies.orchestration import progress as progress_module
from studies.orchestration.progress import Progress
from studies.spec import validate_spec

PREAMBLES = ("INFO mlflow", "[I ", "Configuration for experiment", "TensorBoard", "View detailed results",
             "View run", "Token authentication")


@pytest.mark.slow
def test_run_prints_its_own_lines_and_quiet_prints_the_summary_only(tmp_path):
    methods = {"beta_vae": {"beta": {"search": "grid", "values": [1.0, 4.0]}}}
    spec = write_spec(tmp_path, "talk", methods=methods, seeds=[0],
                      search={"algorithm": "grid", "max_concurrent": 2})
    done = run_cli("run", str(spec), "--root", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout + done.stderr
    assert not [p for p in PREAMBLES if p in printed], printed[-3000:]
    assert printed.count("done   ") == 2 and "trials/h" in printed
    assert "best trial: beta_vae" in printed
    assert "found:   beta_vae (medians of 2 trials): as beta goes from 1 to 4, reconstruction" in done.stdout
    report = tmp_path / "runs" / "talk" / "report" / "report.html"  # built at the end of run
    assert report.is_file() and f"report:  {report}" in done.stdout

    quiet = run_cli("run", str(spec), "--root", str(tmp_path / "runs"), "--set", "name=talk2", "--quiet",
                    "--no-report")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "done   " not in quiet.stdout and "trials:" not in quiet.stdout
    assert "best trial: beta_vae" in quiet.stdout
    assert not (tmp_path / "runs" / "talk2" / "report").exists()


def progress_on_a_clock(monkeypatch, total: int, terminal: bool) -> tuple[SimpleNamespace, Progress]:
    """A ``Progress`` of a tiny spec whose clock the test moves (``clock.now``), on a terminal or not."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock.now)
    shown = Progress(validate_spec({"name": "shown", **TINY, "methods": {"beta_vae": {}}}), total=total)
    shown.terminal = terminal
    return clock, shown


def test_a_log_gets_a_status_line_when_trials_change_or_after_a_long_while(monkeypatch, capsys):
    clock, shown = progress_on_a_clock(monkeypatch, total=3, terminal=False)
    running = [SimpleNamespace(status="RUNNING", last_result={"step": 5})]

    def lines_after(seconds: float, trials: list) -> int:
        clock.now += seconds
        shown.on_step_end(0, trials)
        return len(capsys.readouterr().out.splitlines())

    assert lines_after(20, running) == 1  # the first status
    assert lines_after(20, running) == 0  # nothing changed: a log stays quiet
    assert lines_after(20, [*running, SimpleNamespace(status="RUNNING", last_result={})]) == 1
    assert lines_after(5, running) == 0  # changed, but within STATUS_EVERY_S
    assert lines_after(progress_module.LOG_STATUS_EVERY_S, running) == 1  # changed back
    assert lines_after(progress_module.LOG_STATUS_EVERY_S, running) == 1  # unchanged, but long enough


def test_a_terminal_gets_a_live_bar_under_the_trial_lines(monkeypatch, capsys):
    clock, shown = progress_on_a_clock(monkeypatch, total=4, terminal=True)
    ended = SimpleNamespace(status="TERMINATED", trial_id="t1", config={"method": "beta_vae"},
                            last_result={"mig.discrete_mig": 0.25, "time_total_s": 3.0})
    trials = [ended, SimpleNamespace(status="RUNNING", last_result={})]
    shown.on_step_end(0, trials[1:])
    clock.now += 2
    shown.on_trial_complete(0, trials, ended)
    shown.on_step_end(0, trials)
    shown.on_experiment_end(trials)
    out = capsys.readouterr().out
    assert "done   t1  beta_vae seed 0  mig.discrete_mig=0.2500" in out
    assert "1/4" in out and "1 running, 0 failed, best mig.discrete_mig 0.2500" in out
    assert "trials:" not in out  # no status lines on a terminal: the bar says it
    assert shown.bar is None  # closed at the end
