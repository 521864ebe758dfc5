"""Loading a study for ``disent-study report``: from MLflow alone or from its directory, partial or done.

The studies here are synthetic but real: a sqlite MLflow store in a temporary directory holding a
parent run (with its ``spec.yaml``) and nested runs written the way ``StudyTracker`` writes them
(flattened training config as params; trial id, method and seed tags; scores as metrics), some of
them failed, running or killed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from ray.tune.search.repeater import TRIAL_INDEX

from disent_core.methods.registry import METHODS
from studies import cli
from studies.report import paper
from studies.report.build import write_report
from studies.report.html import method_label
from studies.report.results import (
    _parse,
    _unflatten,
    load_experiment,
    load_study_dir,
    search_values,
    searched_params,
)
from studies.spec import load_spec, spec_yaml, validate_spec
from studies.spec.space import SearchSpace
from studies.study_dir import StudyState

CATALOG = Path(__file__).resolve().parents[2] / "studies" / "catalog"

SPEC = {
    "name": "partial",
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": 4, "base_channels": 8},
    "train": {"steps": 20, "batch_size": 16, "report_every": 10},
    "methods": {
        "beta_vae": {"beta": {"search": "grid", "values": [1, 4, 16]}},
        "annealed_vae": {"c_max": {"search": "grid", "values": [5, 20]}, "gamma": 100},
    },
    "seeds": [0, 1, 2],
    "evaluation": {"protocol": "fast", "metrics": ["mig", "reconstruction"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "search": {"algorithm": "grid", "max_concurrent": 2},
    "report": {"bootstrap": 200, "claims": ["beta_vae tolerance(mig) >= annealed_vae tolerance(mig)"]},
}
# annealed_vae c_max=20: one trial per status that is not FINISHED
STATUSES = {("annealed_vae", 20.0, 0): "FAILED", ("annealed_vae", 20.0, 1): "RUNNING",
            ("annealed_vae", 20.0, 2): "KILLED"}


REAL_DATA = f"real dsprites: dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz sha256:{'7d' * 32}"


def _write_study(root: Path, spec_data: dict[str, Any]) -> tuple[str, StudyState]:
    """A study in a fresh sqlite store under ``root``: its tracking URI and ``StudyState``."""
    spec = validate_spec(spec_data)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment(spec.name, artifact_location=(root / "mlartifacts").as_uri())
    parent = client.create_run(experiment, run_name=spec.name, tags={"study": spec.name})
    client.log_text(parent.info.run_id, spec_yaml(spec), "spec.yaml")
    space = SearchSpace(spec)
    for number, point in enumerate(space.grid):
        for index, seed in enumerate(spec.seeds):
            config = space.train_config({**point, TRIAL_INDEX: index}, seed)
            method = config.method.name
            value = float(point.get(f"{method}.beta", point.get(f"{method}.c_max", 0)))
            trial = f"t{number:02d}_{seed}"
            run = client.create_run(experiment, run_name=trial, tags={
                "mlflow.parentRunId": parent.info.run_id, "trial_id": trial, "method": method,
                "seed": str(seed), "study": spec.name, "dataset": spec.dataset.name,
            })
            run_id = run.info.run_id
            params = [Param(k, str(v)) for k, v in sorted(config.flat_params().items())]
            status = STATUSES.get((method, value, seed), "FINISHED")
            metrics = [Metric("loss/recon", 3000.0 - value, 0, 10)]
            if status == "FINISHED":
                mig = 0.02 * math.log1p(value) + 0.001 * seed + (0.01 if method == "beta_vae" else 0.0)
                metrics += [Metric("loss/recon", 2900.0 - value, 0, 20),
                            Metric("mig.discrete_mig", mig, 0, 20),
                            Metric("reconstruction.reconstruction_error", 2500.0 + 10 * value + seed, 0, 20)]
            client.log_batch(run_id, metrics=metrics, params=params)
            if status == "FAILED":
                client.set_tag(run_id, "failure_reason", "Diverged: training diverged at step 10")
            else:
                client.set_tag(run_id, "dataset_provenance", REAL_DATA)
            if status != "RUNNING":
                client.set_terminated(run_id, status=status)
    state = StudyState(spec.name, str(root), uri, experiment, parent.info.run_id, "", spec.name, str(root))
    return uri, state


def _study_dir(root: Path, state: StudyState, spec_data: dict[str, Any]) -> Path:
    directory = root / state.name
    directory.mkdir()
    state.save(directory)
    (directory / "spec.yaml").write_text(spec_yaml(validate_spec(spec_data)))
    return directory


def test_searched_params_follow_the_spec_names_and_scales():
    quick = searched_params(load_spec(CATALOG / "quickstart.yaml"))
    assert [(p.column, p.log) for p in quick["beta_vae"]] == [("search.beta_vae.beta", True)]  # 1 to 16
    sensitivity = searched_params(load_spec(CATALOG / "beta_sensitivity.yaml"))
    assert [(p.column, p.log) for p in sensitivity["beta_tc_vae"]] == [("search.beta_tc_vae.beta", True)]
    capacity_spec = load_spec(CATALOG / "capacity_sensitivity.yaml")
    capacity = {p.column: p for p in searched_params(capacity_spec)["annealed_vae"]}
    assert capacity["search.annealed_vae.capacity[0].end"].log
    assert not capacity["search.annealed_vae.capacity[1].rate"].log
    assert capacity["search.annealed_vae.capacity"].categorical
    assert not capacity["search.annealed_vae.capacity"].numeric
    gamma = capacity["search.annealed_vae.gamma"]
    assert gamma.numeric and gamma.log  # choices 100 and 1000
    devae = {p.column: p for p in searched_params(load_spec(CATALOG / "devae_tolerance.yaml"))["devae"]}
    assert set(devae) == {"search.devae.betas", "search.devae.scale"}
    assert not devae["search.devae.betas"].numeric and devae["search.devae.scale"].numeric
    assert not devae["search.devae.scale"].log  # 0.3 to 1: a linear axis


@pytest.mark.parametrize("name", ["quickstart", "capacity_sensitivity", "deft_stages", "devae_tolerance",
                                  "locatello2019"])
def test_search_values_are_recovered_from_mlflow_params(name):
    """The searched values of a trial, rebuilt from the params MLflow holds, are what Optuna chose."""
    spec = load_spec(CATALOG / f"{name}.yaml")
    space = SearchSpace(spec)
    assignments = space.grid[:: max(1, len(space.grid) // 12)]
    if not assignments:
        for seed in range(12):
            trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
            returned = space.define_by_run(trial)
            assignments.append({**trial.params, **returned})
    for assignment in assignments:
        config = space.train_config(assignment, spec.seeds[0])
        params = {k: _parse(str(v)) for k, v in config.flat_params().items()}
        found = search_values(spec, assignment["method"], _unflatten(params))
        expected = {k: v for k, v in assignment.items() if k not in ("method", "grid_point")}
        assert found.keys() == expected.keys(), assignment
        for key, value in expected.items():
            if isinstance(value, float):
                assert found[key] == pytest.approx(value), key
            else:
                assert found[key] == value, key


def test_partial_study_from_the_experiment_alone(tmp_path):
    uri, _ = _write_study(tmp_path, SPEC)
    results = load_experiment("partial", uri)
    assert results.source == "MLflow"
    assert results.counts == {"completed": 12, "failed": 1, "running": 1, "stopped": 1}
    assert results.planned == 15
    assert len(results.trials) == 15
    table = results.table
    assert len(table) == 12 and set(table["status"]) == {"completed"}
    assert sorted(table["method"].value_counts().items()) == [("annealed_vae", 3), ("beta_vae", 9)]
    assert set(table["search.beta_vae.beta"].dropna()) == {1, 4, 16}
    assert set(table["search.annealed_vae.c_max"].dropna()) == {5}
    assert table["train_config.model.latent_dim"].eq(4).all()
    assert (table["step"] == 20).all()
    assert (table["dataset_provenance"] == REAL_DATA).all()
    failed = results.trials[results.trials["status"] == "failed"]
    assert failed["error"].tolist() == ["Diverged: training diverged at step 10"]
    assert results.metrics == ["evaluation_results.mig.discrete_mig",
                               "evaluation_results.reconstruction.reconstruction_error"]
    assert results.method_params("beta_vae") == [("search.beta_vae.beta", True)]  # grid 1 to 16: log axis
    assert results.method_params("annealed_vae") == []  # one c_max completed: nothing varies


def test_study_dir_uses_mlflow_while_running_and_its_table_once_finished(tmp_path):
    uri, state = _write_study(tmp_path, SPEC)
    directory = _study_dir(tmp_path, state, SPEC)
    # a stale table from an earlier stop: two trials only
    pd.DataFrame({"trial_id": ["t00_0", "t00_1"], "status": ["completed"] * 2, "method": ["beta_vae"] * 2,
                  "seed": [0, 1]}).to_parquet(directory / "results.parquet")
    running = load_study_dir(directory)
    assert running.source == "MLflow" and len(running.trials) == 15

    client = MlflowClient(uri)
    client.set_terminated(state.parent_run_id, status="FINISHED")
    stale = load_study_dir(directory)
    assert stale.source == "MLflow"  # finished, but the file does not list the trials MLflow has
    stale.trials.to_parquet(directory / "results.parquet")
    done = load_study_dir(directory)
    assert done.source == "results.parquet"
    assert done.counts == stale.counts


def test_report_of_a_partial_study(tmp_path):
    uri, _ = _write_study(tmp_path, SPEC)
    results = load_experiment("partial", uri)
    html_path = write_report(results, tmp_path / "report")
    page = html_path.read_text()
    written = sorted(p.stem for p in (tmp_path / "report" / "figures").glob("*.png"))
    assert written == sorted(p.stem for p in (tmp_path / "report" / "figures").glob("*.svg"))
    assert {"tolerance", "pareto", "spearman", "variance", "curves_beta_vae_beta"} <= set(written)
    assert page.count("<img ") == len(written)
    assert page.count('src="data:image/png;base64,') == len(written)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)  # nothing loaded from outside the file
    assert "<script" not in page
    assert "12 completed" in page and "1 failed" in page and "1 running" in page and "1 stopped" in page
    assert "Partial study: 12 of 15 planned" in page
    assert f"<dt>data provenance</dt><dd>{REAL_DATA}</dd>" in page  # real: no warning
    assert "Diverged: training diverged at step 10" in page
    # the claim: annealed_vae has a single completed configuration
    assert "not enough trials" in page and "1 configuration(s), need 2" in page
    table = pd.read_parquet(tmp_path / "report" / "results.parquet")
    assert len(table) == 15
    assert sorted(table["status"].value_counts().items()) == [
        ("completed", 12), ("failed", 1), ("running", 1), ("stopped", 1)]
    assert any(c.startswith("train_config.") for c in table.columns)
    assert "evaluation_results.mig.discrete_mig" in table.columns


def test_report_of_a_study_without_completed_trials(tmp_path):
    methods = {"annealed_vae": {"c_max": {"search": "grid", "values": [20]}}}
    spec = {**SPEC, "name": "empty", "methods": methods, "report": {"bootstrap": 200}}
    uri, _ = _write_study(tmp_path, spec)
    results = load_experiment("empty", uri)
    assert results.counts == {"completed": 0, "failed": 1, "running": 1, "stopped": 1}
    page = write_report(results, tmp_path / "report").read_text()
    assert "no completed trial yet" in page
    assert "<img " not in page


def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys):
    uri, _ = _write_study(tmp_path, SPEC)
    capsys.readouterr()
    lines = []
    for args in ([str(tmp_path / "missing")], [str(tmp_path)],  # the second is not a study directory
                 ["--experiment", "nope", "--tracking-uri", uri],
                 ["--experiment", "nope", "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"], []):
        assert cli.main(["report", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        lines.append(err)
    assert not (tmp_path / "x.db").exists()
    assert "no study directory" in lines[0]
    assert "not a study directory" in lines[1]
    assert "no MLflow experiment 'nope'" in lines[2] and "partial" in lines[2]
    assert "no MLflow store" in lines[3]


def test_cli_writes_the_report_and_logs_it_to_the_parent_run(tmp_path, capsys):
    uri, state = _write_study(tmp_path, SPEC)
    out = tmp_path / "out"
    assert cli.main(["report", "--experiment", "partial", "--tracking-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"xdg-open {out / 'report.html'}" in printed and (out / "report.html").as_uri() in printed
    client = MlflowClient(uri)
    logged = {a.path for a in client.list_artifacts(state.parent_run_id, "report")}
    assert {"report/report.html", "report/results.parquet", "report/figures"} <= logged
    figures = {Path(a.path).name for a in client.list_artifacts(state.parent_run_id, "report/figures")}
    assert figures == {p.name for p in (out / "figures").iterdir()}


def _devae_table(rows: list[tuple[list[float], float, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "method": "devae", "seed": seed, "status": "completed",
        "train_config.method.betas": json.dumps(betas), "train_config.method.scale": scale,
        "evaluation_results.mig.discrete_mig": mig,
        "evaluation_results.reconstruction.reconstruction_error": recon,
        "final.loss/recon_space_0": recon + 7.0,  # the sampled-z training term of space 0
    } for betas, scale, seed, mig, recon in rows])


def test_devae_numbers_sit_beside_tables_3_and_4():
    data = yaml.safe_load((CATALOG / "devae_tolerance.yaml").read_text())
    spec = validate_spec(data)
    assert paper.applies(spec)
    table = _devae_table([
        ([1.0, 10.0, 40.0], 1.0, 0, 0.30, 50.0), ([1.0, 10.0, 40.0], 1.0, 1, 0.40, 60.0),
        ([1.0, 10.0], 1.0, 0, 0.10, 40.0),
        ([1.0, 10.0, 40.0], 0.5, 0, 0.25, 20.0),
        ([1.0, 10.0], 0.5, 0, 0.99, 99.0),  # neither table: s != 1 and betas != [1, 10, 40]
    ])
    comparison = paper.compare(spec, table)
    assert comparison.dataset == "dSprites"
    assert "200,000 steps × batch 256" in comparison.budget and "dlib2019" in comparison.budget
    t3 = {r.setting: r for r in comparison.table3}
    assert list(t3) == ["[1, 10, 20, 40, 80]", "[1, 10, 40]", "[1, 10]"]
    assert t3["[1, 10, 40]"].paper_mig == "0.35 ± 0.02" and t3["[1, 10, 40]"].paper_recon == "51.99 ± 26.99"
    assert t3["[1, 10, 40]"].ours_mig.mean == pytest.approx(0.35) and t3["[1, 10, 40]"].ours_mig.n == 2
    assert t3["[1, 10, 40]"].ours_mig.std == pytest.approx(0.0707, abs=1e-4)
    assert t3["[1, 10]"].ours_recon.mean == 40.0 and t3["[1, 10]"].ours_recon.n == 1
    assert t3["[1, 10, 20, 40, 80]"].ours_mig.n == 0 and str(t3["[1, 10, 20, 40, 80]"].ours_mig) == "–"
    t4 = {r.setting: r for r in comparison.table4}
    assert list(t4) == ["0.3", "0.5", "1"]
    assert t4["0.5"].paper_mig == "0.29 ± 0.09" and t4["0.5"].ours_recon.mean == 20.0
    assert t4["1"].ours_mig.n == 2
    assert t3["[1, 10, 40]"].ours_train_recon.mean == pytest.approx(62.0)  # sampled z, beside the mean's 55
    shapes = validate_spec({**data, "dataset": {"name": "shapes3d"}})
    assert paper.compare(shapes, table).table3[1].paper_mig == "0.57 ± 0.01"
    assert not paper.applies(load_spec(CATALOG / "quickstart.yaml"))


def test_the_method_list_shows_dids_provenance_and_defts_gamma_mode():
    assert METHODS["did"].provenance == "reconstruction"
    trials = pd.DataFrame([
        {"method": "did", "method_provenance": "reconstruction"},
        {"method": "deft", "method_provenance": "reimplementation", "train_config.method.gamma_mode": "lr"},
        {"method": "deft", "method_provenance": "reimplementation",
         "train_config.method.gamma_mode": "grad_scale"},
        {"method": "beta_vae", "method_provenance": "reimplementation"},
    ])
    assert method_label(trials, "did") == "did (provenance: reconstruction)"
    assert method_label(trials, "deft") == "deft (gamma_mode: grad_scale; gamma_mode: lr)"
    assert method_label(trials, "beta_vae") == "beta_vae"
