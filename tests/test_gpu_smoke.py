"""``bench/gpu_smoke.py`` on the CPU: its lines, its final count and its exit status, in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_smoke.py"
OK_TRAIN = r"ok    {name} +{precision} +2 steps +\d+ img/s +loss +[\d.]+ +mig [\d.]+ +\([\d.]+ s\)"


def _smoke(*args: str, hide_gpus: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the script with ``args``; ``hide_gpus`` hides every CUDA device from it."""
    env = dict(os.environ)
    if hide_gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_a_quick_cpu_run_prints_a_line_per_check_skips_fp16_and_counts_them():
    proc = _smoke("--device", "cpu", "--quick", "--steps", "2", "--methods", "beta_vae", "factor_vae",
                  "--no-study")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("gpu_smoke: device cpu")
    for name in ("beta_vae", "factor_vae"):
        for precision in ("fp32", "bf16"):
            pattern = OK_TRAIN.format(name=name, precision=precision)
            assert any(re.fullmatch(pattern, line) for line in lines), (name, precision, proc.stdout)
        assert f"skip  {name:<10}  fp16  : skipped: fp16 on CPU" in lines
    assert any(re.match(r"ok    population  fp32  4 members +2 steps", line) for line in lines), proc.stdout
    assert not any(line.startswith("FAIL") for line in lines)
    assert lines[-1] == "gpu_smoke: 5 passed, 0 failed, 2 skipped"


@pytest.mark.slow
def test_the_study_check_runs_four_trials_through_the_cli():
    proc = _smoke("--device", "cpu", "--quick", "--steps", "2", "--methods", "beta_vae",
                  "--precisions", "fp32", "--no-population")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    study = r"ok    study +cpu +4 trials completed  gpu 0 each  device cpu  best mig [\d.]+"
    assert any(re.match(study, line) for line in lines), proc.stdout
    assert "skip  pop. study  cpu   : skipped: populations on the CPU are covered by the study tests" in lines
    assert lines[-1] == "gpu_smoke: 2 passed, 0 failed, 1 skipped"


def test_cuda_without_a_gpu_fails_every_check_with_its_error_goes_on_and_exits_1():
    proc = _smoke("--device", "cuda", "--steps", "2", "--methods", "beta_vae", "factor_vae", "--precisions",
                  "fp32", "bf16", hide_gpus=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    no_cuda = "ValueError: train.device is 'cuda' but no CUDA device is available"
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == 7, proc.stdout
    for name in ("beta_vae", "factor_vae"):
        for precision in ("fp32", "bf16"):
            expected = f"FAIL  {name:<10}  {precision}  : {no_cuda}"
            assert any(line.startswith(expected) for line in fails), proc.stdout
    assert any(line.startswith("FAIL  population  fp32  : " + no_cuda) for line in fails), proc.stdout
    assert any(line.startswith("FAIL  study       cuda  : RuntimeError: studies.cli run exited 2: ")
               and "resources.gpu" in line for line in fails), proc.stdout
    assert any(line.startswith("FAIL  pop. study  cuda  : RuntimeError: studies.cli run exited 2: ")
               for line in fails), proc.stdout
    assert lines[-1] == "gpu_smoke: 0 passed, 7 failed, 0 skipped"


def test_an_unknown_method_is_refused_before_any_check():
    proc = _smoke("--device", "cpu", "--methods", "beta_vae", "no_such_vae", "--no-study", "--no-population")
    assert proc.returncode == 2
    assert "unknown method(s) no_such_vae" in proc.stderr
    assert "gpu_smoke:" not in proc.stdout
