"""``disent-study report`` on a small real study, rendered in headless Chromium.

One study runs once for the module through the real command line (embedded Ray, Optuna, MLflow):
beta-VAE at two betas and AnnealedVAE on a 2 x 2 grid of C_max and gamma, three seeds each, 20
steps, scored with MIG and reconstruction on the fast protocol (about two minutes on 2 cores). The
report is built from the study directory and again from the MLflow experiment alone, and the page
is opened in Debian's ``chromium`` through Playwright (``executable_path``; Playwright's own browser
downloads are never used): no console message of level error, no page error, every figure
present and decoded, and a full-page screenshot saved as a test artefact under
``$DISENT_TEST_ARTIFACTS`` (default: the test's temporary directory).

``chromium`` is installed with apt-get when it is missing and the tests run as root (CI's
``.ci/run`` installs it up front); otherwise the browser test fails saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from studies.report.html import precision_label
from studies.study_dir import StudyState

pytestmark = pytest.mark.slow

NAME = "report_e2e"
SPEC = {
    "name": NAME,
    "description": "beta-VAE against AnnealedVAE, a tiny real study for the report test",
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": 4, "base_channels": 8},
    "train": {"steps": 20, "batch_size": 16, "report_every": 10},
    "methods": {
        "beta_vae": {"beta": {"search": "grid", "values": [1, 4]}},
        "annealed_vae": {"c_max": {"search": "grid", "values": [5, 20]},
                         "gamma": {"search": "grid", "values": [100, 1000]}},
    },
    "seeds": [0, 1, 2],
    "evaluation": {"protocol": "fast", "metrics": ["mig", "reconstruction"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "search": {"algorithm": "grid", "max_concurrent": 2},
    "resources": {"cpu": 1},
    "report": {"bootstrap": 200, "claims": ["annealed_vae tolerance(mig) >= beta_vae tolerance(mig)",
                                            "beta_vae best(mig) > 0"]},
}
TRIALS = (2 + 4) * 3
SECTIONS = ("claims", "tolerance", "curves", "pareto", "importances", "spearman", "variance", "left-out")


def cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studies.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finished study's directory (its runs root is the parent)."""
    base = tmp_path_factory.mktemp("report_study")
    spec = base / f"{NAME}.yaml"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    done = cli("run", str(spec), "--root", str(base / "runs"), cwd=base)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return base / "runs" / NAME


@pytest.fixture(scope="module")
def report_dir(study: Path) -> Path:
    done = cli("report", str(study), cwd=study.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    out = study / "report"
    assert f"report:  {out / 'report.html'}" in done.stdout
    assert f"xdg-open {out / 'report.html'}" in done.stdout
    assert "trials read from results.parquet" in done.stdout
    return out


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's ``chromium``, installed with apt-get when missing (root only)."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            installed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
            if installed.returncode != 0:
                pytest.fail(f"`{' '.join(command)}` failed ({installed.returncode}):\n"
                            f"{installed.stderr[-3000:]}")
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("no `chromium` on PATH and apt-get cannot install it here (not root, or no apt-get); "
                    "install Debian's `chromium` package")
    return found


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where test artefacts go: $DISENT_TEST_ARTIFACTS, else a temporary directory."""
    directory = Path(os.environ.get("DISENT_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_report_files_and_mlflow_artifacts(study: Path, report_dir: Path):
    figures = sorted(p.stem for p in (report_dir / "figures").glob("*.png"))
    assert figures == sorted(p.stem for p in (report_dir / "figures").glob("*.svg"))
    assert set(figures) == {
        "tolerance", "curves_beta_vae_beta", "curves_annealed_vae_c_max", "curves_annealed_vae_gamma",
        "pareto", "importances_mig.discrete_mig", "spearman", "variance",
    }
    table = pd.read_parquet(report_dir / "results.parquet")
    assert len(table) == TRIALS and set(table["status"]) == {"completed"}
    for column in ("trial_id", "method", "seed", "search.beta_vae.beta", "search.annealed_vae.c_max",
                   "train_config.method.beta", "train_config.train.steps",
                   "evaluation_results.mig.discrete_mig",
                   "evaluation_results.reconstruction.reconstruction_error"):
        assert column in table.columns, column
    assert set(table["dataset_provenance"]) == {"procedural"}
    page = (report_dir / "report.html").read_text()
    provenance = "<dt>data provenance</dt><dd>procedural <span class='detail'>(procedural data: not"
    assert provenance in page
    assert "<dt>training precision</dt><dd>fp32</dd>" in page
    assert page.count("<img ") == len(figures)
    assert "18 completed" in page and "<script" not in page
    assert page.count('class="verdict ') == 2

    state = StudyState.load(study)
    client = MlflowClient(state.tracking_uri)
    logged = {a.path for a in client.list_artifacts(state.parent_run_id, "report")}
    assert {"report/report.html", "report/results.parquet", "report/figures"} <= logged
    listed = client.list_artifacts(state.parent_run_id, "report/figures")
    logged_figures = {Path(a.path).name for a in listed}
    assert logged_figures == {p.name for p in (report_dir / "figures").iterdir()}


def test_report_from_the_mlflow_experiment_alone(study: Path, report_dir: Path, tmp_path: Path):
    uri = StudyState.load(study).tracking_uri
    done = cli("report", "--experiment", NAME, "--tracking-uri", uri, "--out", str(tmp_path / "out"),
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trials read from MLflow" in done.stdout
    ours = pd.read_parquet(tmp_path / "out" / "results.parquet")
    theirs = pd.read_parquet(report_dir / "results.parquet")
    assert sorted(ours["trial_id"]) == sorted(theirs["trial_id"])
    merged = theirs.merge(ours, on="trial_id", suffixes=("", "_mlflow"))
    for column in ("method", "seed", "step", "dataset_provenance", "search.beta_vae.beta",
                   "search.annealed_vae.gamma", "evaluation_results.mig.discrete_mig"):
        pd.testing.assert_series_equal(merged[column], merged[f"{column}_mlflow"], check_names=False,
                                       check_dtype=False)
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == sorted(
        p.name for p in (report_dir / "figures").iterdir())


@pytest.fixture
def browser(chromium: str) -> Iterator:
    """A headless Chromium (the system one) driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def test_report_renders_in_headless_chromium(report_dir: Path, browser, artifacts: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    html = report_dir / "report.html"
    page.goto(html.as_uri(), wait_until="load")
    assert problems == []
    # the page loads nothing but itself (figures are data: URLs)
    assert [u for u in requests if not u.startswith("data:")] == [html.as_uri()]
    figures = len(list((report_dir / "figures").glob("*.png")))
    assert page.locator("figure img").count() == figures == page.locator("img, svg").count()
    decoded = page.evaluate("[...document.images].map(i => i.complete && i.naturalWidth > 0)")
    assert decoded == [True] * figures
    for section in SECTIONS:
        assert page.locator(f"section#{section} h2").is_visible(), section
    assert page.locator("#claims .verdict").count() == 2
    shot = artifacts / "report_e2e.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000


def test_a_reduced_training_precision_is_named_with_its_caveat():
    trials = pd.DataFrame({"train_config.train.precision": ["bf16", "bf16", None]})
    assert precision_label(trials, "fp32") == (
        "bf16 <span class='detail'>(autocast: numbers differ from the fp32 reference)</span>"
    )
    assert precision_label(trials.iloc[0:0], "bf16").startswith("bf16 <span")
    assert precision_label(pd.DataFrame({"method": ["beta_vae"]}), "fp32") == "fp32"
