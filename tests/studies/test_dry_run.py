"""``disent-study run --dry-run`` and ``storage.keep_checkpoints``.

The dry run validates a spec and prints its trials, resources, populations, storage and compute
without starting Ray or writing anything, for every catalog spec. Under a population it counts the
Tune trials (at least ceil(members / N) per population key; over a grid subset or a sampled search
with the configurations' split over the methods assumed) and costs them only with a given
population throughput. Its checkpoint size matches a real checkpoint of ``disent_core.train``, and
its per-trial storage what a tiny quickstart trial really leaves. Each
``keep_checkpoints`` policy leaves what it says: ``final`` one checkpoint in Tune and one in MLflow,
``none`` figures only, ``best`` the best evaluated checkpoint and the final one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient
from study_helpers import TINY, nested_runs, run_cli, write_spec

from disent_core.train import CHECKPOINT_NAME, train
from studies.cli import main
from studies.orchestration.budget import (
    GPU_IMAGES_PER_SEC,
    METRIC_ROW_BYTES,
    estimate_study,
    format_budget,
    trial_cost,
)
from studies.orchestration.trainable import (
    CHECKPOINT_SCORE,
    FIGURES,
    checkpoint_config,
    checkpoints_kept,
    writes_one_checkpoint,
)
from studies.spec import load_spec, spec_yaml, validate_spec
from studies.spec.overrides import parse_set
from studies.spec.space import SearchSpace

CATALOG = Path(__file__).parents[2] / "studies" / "catalog"
SPECS = sorted(CATALOG.glob("*.yaml"))
QUICKSTART = CATALOG / "quickstart.yaml"
TINY_QUICKSTART = ["train.steps=20", "train.report_every=10", "search.num_trials=1", "seeds=[0]",
                   "search.max_concurrent=1"]
LABELS = ("trials:", "resources:", "storage:", "  checkpoints:", "  figures:", "  MLflow metric rows:",
          "compute:")


def tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_dry_run_of_every_catalog_spec_prints_the_estimate_and_writes_nothing(path, tmp_path, capsys,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    assert main(["run", str(path), "--dry-run", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for label in LABELS:
        assert any(line.startswith(label) for line in lines), (label, out)
    spec = load_spec(path)
    trials = SearchSpace(spec).num_configurations() * len(spec.seeds)
    assert f"trials: {trials:,} (" in out
    assert f"storage.keep_checkpoints: {spec.storage.keep_checkpoints}" in out
    assert ("GPU-hours" in out) == (spec.resources.gpu > 0) and "CPU-hours" in out
    assert list(tmp_path.iterdir()) == []  # no runs root, nothing in the working directory
    assert not ray.is_initialized()


def test_dry_run_takes_overrides_and_a_measured_throughput(capsys):
    args = ["run", str(QUICKSTART), "--dry-run", "--images-per-sec", "6400"]
    for item in ("search.num_trials=2", "train.steps=1000", "storage.keep_checkpoints=none"):
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trials: 4 (2 configuration(s) x 2 seed(s)" in out
    assert "checkpoints: 0 x" in out and "storage.keep_checkpoints: none" in out
    # 1000 steps x 64 images at 6400 images/s: 10 s per trial
    assert "at 6,400 images/s per trial (given with --images-per-sec): 0.00 hours per trial" in out


@pytest.mark.parametrize("args, message", [
    (["--dry-run", "--images-per-sec", "0"], "--images-per-sec must be > 0"),
    (["--images-per-sec", "100"], "give it with --dry-run"),
    (["--population-images-per-sec", "100"], "--population-images-per-sec is an input of the estimate"),
    (["--dry-run", "--population-images-per-sec", "-5"], "--population-images-per-sec must be > 0"),
    (["--dry-run", "--population-images-per-sec", "100"], "trains one member per Tune trial"),
    (["--dry-run", "--set", "storage.keep_checkpoints=last"], "storage.keep_checkpoints: Input should be"),
    (["--dry-run", "--set", "methods.beta_vae.beta={search: log_float, low: 1, high: 16}"],
     "grid search needs explicit values"),
])
def test_a_bad_dry_run_is_one_error(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(QUICKSTART), *args]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_keep_checkpoints_defaults_to_final_and_is_recorded_in_the_spec():
    spec = validate_spec({"name": "keep", **TINY, "methods": {"beta_vae": {}}})
    assert spec.storage.keep_checkpoints == "final"
    assert "  keep_checkpoints: final" in spec_yaml(spec).splitlines()


def test_each_policy_tells_tune_what_to_keep():
    def spec(keep: str, every: int = 0, mode: str = "max", checkpoint_every: int | None = None):
        train = TINY["train"] if checkpoint_every is None else {**TINY["train"],
                                                                 "checkpoint_every": checkpoint_every}
        return validate_spec({"name": "keep", **TINY, "train": train, "methods": {"beta_vae": {}},
                              "objective": {"metric": "mig.discrete_mig", "mode": mode},
                              "evaluation": {"protocol": "fast", "metrics": ["mig"], "every": every},
                              "storage": {"keep_checkpoints": keep}})

    # TINY trains 20 steps and checkpoints every 10 by default: Tune rotates them
    assert not writes_one_checkpoint(spec("final"))
    assert checkpoint_config(spec("final")).num_to_keep == 1
    assert checkpoint_config(spec("all")).num_to_keep is None
    best = checkpoint_config(spec("best", mode="min"))
    assert (best.num_to_keep, best.checkpoint_score_attribute, best.checkpoint_score_order) == (
        1, CHECKPOINT_SCORE, "min")
    # one checkpoint per trial: nothing to rotate, so no limit (and no snapshot forced per trial)
    assert writes_one_checkpoint(spec("none"))
    assert checkpoint_config(spec("none")).num_to_keep is None
    for keep in ("final", "best"):
        for once in (0, 20, 50):
            assert writes_one_checkpoint(spec(keep, checkpoint_every=once))
            assert checkpoint_config(spec(keep, checkpoint_every=once)).num_to_keep is None
    assert checkpoint_config(spec("final", checkpoint_every=19)).num_to_keep == 1
    assert checkpoints_kept(spec("final"), 1000, 200) == (1, 1)
    assert checkpoints_kept(spec("none"), 1000, 200) == (0, 0)
    assert checkpoints_kept(spec("all"), 1000, 300) == (4, 1)  # 300, 600, 900 and the end
    assert checkpoints_kept(spec("all"), 1000, 0) == (1, 1)
    assert checkpoints_kept(spec("best"), 20, 10) == (1, 1)  # evaluated at the end only
    assert checkpoints_kept(spec("best", every=10), 20, 10) == (2, 1)


def test_the_checkpoint_estimate_matches_a_real_checkpoint(tmp_path):
    """The quickstart's model, two steps: the formula (weights + Adam state) against the file."""
    spec = load_spec(QUICKSTART)
    config = SearchSpace(spec).train_config({"method": "beta_vae", "beta_vae.beta": 4.0}, 0)
    train_settings = config.train.model_copy(update={"steps": 2, "batch_size": 8, "prefetch": 0})
    config = config.model_copy(update={"train": train_settings})
    train(config, checkpoint_dir=tmp_path)
    real = (tmp_path / CHECKPOINT_NAME).stat().st_size
    estimate = trial_cost(spec, config).checkpoint_bytes
    assert abs(estimate / real - 1) < 0.01, (estimate, real)


def test_a_logged_model_adds_its_weights_twice_to_the_storage():
    spec = load_spec(QUICKSTART)
    logging = spec.model_copy(update={"tracking": spec.tracking.model_copy(update={"log_model": True})})
    config = SearchSpace(spec).train_config({"method": "beta_vae", "beta_vae.beta": 4.0}, 0)
    plain, logged = trial_cost(spec, config), trial_cost(logging, config)
    assert plain.model_bytes == 0 and logged.model_bytes == 4 * logged.parameters
    assert logged.storage - plain.storage == 2 * logged.model_bytes


@pytest.mark.slow
def test_a_tiny_quickstart_trial_leaves_what_the_dry_run_says(tmp_path):
    """keep_checkpoints: final: one checkpoint in Tune and one in MLflow, small figures, and in all
    within a factor 2 of the estimate."""
    root = tmp_path / "runs"
    sets = [arg for item in TINY_QUICKSTART for arg in ("--set", item)]
    done = run_cli("run", str(QUICKSTART), "--root", str(root), *sets)
    assert done.returncode == 0, done.stderr[-3000:]

    trial_dirs = list((root / "quickstart" / "tune").glob("trial_*"))
    assert len(trial_dirs) == 1
    assert len(list(trial_dirs[0].rglob(CHECKPOINT_NAME))) == 1
    (run,) = nested_runs(root, "quickstart")
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    artifacts = {Path(a.path).name: a.file_size for a in client.list_artifacts(run.info.run_id, "final")}
    assert CHECKPOINT_NAME in artifacts
    for name in FIGURES:
        assert 1_000 < artifacts[name] < 80_000, name
    rows = sum(len(client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics)

    left = tree_bytes(trial_dirs[0]) + sum(artifacts.values()) + rows * METRIC_ROW_BYTES
    estimate = estimate_study(load_spec(QUICKSTART, parse_set(TINY_QUICKSTART)))
    assert estimate.trials == 1
    assert 0.5 < estimate.per_trial.storage / left < 2, (estimate.per_trial, left)
    assert estimate.per_trial.metric_rows == rows


@pytest.mark.slow
def test_keep_checkpoints_none_leaves_figures_and_no_checkpoint(tmp_path):
    spec = write_spec(tmp_path, "nockpt", methods={"beta_vae": {"beta": 4}},
                      search={"algorithm": "random", "num_trials": 1},
                      storage={"keep_checkpoints": "none"})
    root = tmp_path / "runs"
    done = run_cli("run", str(spec), "--root", str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(root.rglob(CHECKPOINT_NAME)) == []
    assert "keep_checkpoints: none" in (root / "nockpt" / "spec.yaml").read_text()
    (run,) = nested_runs(root, "nockpt")
    assert run.info.status == "FINISHED"
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "final")}
    assert artifacts == {*FIGURES, "config.yaml", "scores.json"}


@pytest.mark.slow
def test_keep_checkpoints_best_keeps_the_best_evaluated_checkpoint_and_the_final_one(tmp_path):
    """Checkpoints every 10 steps, evaluations every 20: the checkpoints at 10 and 30 have no score of
    their own and are not kept as the best, though the one at 30 carries the score of step 20 forward
    for the search. (Maximising the reconstruction error makes an earlier checkpoint the best.)"""
    train = {**TINY["train"], "steps": 40, "checkpoint_every": 10}
    spec = write_spec(tmp_path, "bestckpt", train=train, methods={"beta_vae": {"beta": 4}},
                      search={"algorithm": "random", "num_trials": 1},
                      evaluation={"protocol": "fast", "metrics": ["reconstruction"], "every": 20},
                      objective={"metric": "reconstruction.reconstruction_error", "mode": "max"},
                      storage={"keep_checkpoints": "best"})
    root = tmp_path / "runs"
    done = run_cli("run", str(spec), "--root", str(root))
    assert done.returncode == 0, done.stderr[-3000:]
    (trial_dir,) = (root / "bestckpt" / "tune").glob("trial_*")
    results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    assert [r["step"] for r in results] == [10, 20, 30, 40]
    assert all(r["checkpoint_dir_name"] for r in results)
    scored = [(r[CHECKPOINT_SCORE], r["step"], r["checkpoint_dir_name"]) for r in results
              if not math.isnan(r[CHECKPOINT_SCORE])]
    assert [s[1] for s in scored] == [20, 40]
    carried = results[2]["reconstruction.reconstruction_error"]
    assert math.isnan(results[2][CHECKPOINT_SCORE]) and carried == results[1][CHECKPOINT_SCORE]
    expected = {max(scored)[2], results[-1]["checkpoint_dir_name"]}
    kept = {p.name for p in trial_dir.glob("checkpoint_*")}
    assert kept == expected
    assert all((trial_dir / name / CHECKPOINT_NAME).is_file() for name in kept)


def test_format_budget_lines_have_no_newlines():
    budget = estimate_study(load_spec(QUICKSTART))
    assert all("\n" not in line for line in format_budget(budget))
    with pytest.raises(ValueError, match="images per second"):
        estimate_study(load_spec(QUICKSTART), images_per_sec=-1)


def population_spec(**sections):
    """Two GPU Tune trials at once of 2 CPUs and half a GPU, ``resources.population: auto`` (8 members):
    beta_vae over 3 betas (which fuse) and DiD (which trains alone), 5 seeds, 36,000 steps at batch
    100 (3.6M images per member)."""
    data = {"name": "pop", **TINY, "train": {"steps": 36_000, "batch_size": 100, "report_every": 1000},
            "methods": {"beta_vae": {"beta": {"search": "grid", "values": [1, 2, 4]}}, "did": {}},
            "seeds": [0, 1, 2, 3, 4], "search": {"algorithm": "grid", "max_concurrent": 2},
            "resources": {"cpu": 2, "gpu": 0.5}, **sections}
    return validate_spec(data)


def test_a_population_packs_the_fused_members_of_a_grid_and_leaves_the_others_alone():
    budget = estimate_study(population_spec())
    assert budget.population == 8 and budget.groups_exact
    assert budget.trials == 20  # (3 betas + 1 DiD configuration) x 5 seeds
    # beta_vae: 15 members, 8 to a Tune trial: 2; DiD's 5 members train alone: 5
    assert budget.tune_trials == 7 and budget.fused_members == 15
    assert budget.member_memory > 0
    lines = format_budget(budget)
    assert "resources: 2 CPU and 0.5 GPU per Tune trial, 2 Tune trial(s) at once" in lines
    assert lines[2] == ("population: 8 members (trials) per Tune trial (resources.population: auto), "
                        "trained as one fused model")
    assert lines[3].startswith("  a Tune trial's 2 CPU and 0.5 GPU hold up to 8 members (16 per GPU), "
                               "at least 8 x ")
    assert ("  Tune trials: at least 7 for the 20 trials (beta_vae 2, did 5; every grid point by its "
            "population key, up to 8 to a Tune trial)") in lines
    assert any(line.startswith("  did: not fused (one member per Tune trial)") for line in lines)
    # no population throughput: the population-1 compute, and how to get the population's
    hours = 3_600_000 / GPU_IMAGES_PER_SEC / 3600
    alone = f"  each trial alone (population 1), at {GPU_IMAGES_PER_SEC:,} images/s per trial (GPU, ASSUMED"
    assert any(line.startswith(alone) and f"{hours:.2f} hours per trial" in line for line in lines)
    assert any("a Tune trial's images/s (its 8 members together) is not known" in line for line in lines)
    assert any("give that figure with --population-images-per-sec" in line for line in lines)


def test_a_given_population_throughput_costs_each_tune_trial_as_a_full_population():
    budget = estimate_study(population_spec(), images_per_sec=1000, population_images_per_sec=8000)
    # a population Tune trial: 8 x 3.6M images at 8,000 images/s, 1 hour (the second, of 7 members,
    # costed as full); a DiD trial: 3.6M at 1,000 images/s, 1 hour. 7 Tune-trial-hours in all,
    # x 0.5 GPU and x 2 CPUs; 2 at once: 3.5 hours
    assert budget.population_hours == pytest.approx((1.0, 7.0))
    assert budget.population_wall_hours == pytest.approx(3.5)
    assert format_budget(budget)[-1] == (
        "  population 8: at 8,000 images/s per Tune trial of 8 members (given with "
        "--population-images-per-sec; 8.00x the 1,000 of one trial alone): up to 1.00 hours per Tune trial, "
        "7 Tune trials, 3.50 GPU-hours and 14 CPU-hours in all, about 3.50 hours at 2 Tune trials at once "
        "(a Tune trial of fewer members costed as full)"
    )


def test_a_sampled_search_gives_a_lower_bound_of_tune_trials():
    spec = population_spec(methods={"beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 16}},
                                    "did": {}},
                           search={"algorithm": "random", "num_trials": 10, "max_concurrent": 2})
    budget = estimate_study(spec)
    assert not budget.groups_exact
    # 10 configurations taken as 5 per method, x 5 seeds: beta_vae 25 members in 4 Tune trials, DiD 25
    assert budget.tune_trials == 29
    bound = ("  Tune trials: at least 29 for the 50 trials (beta_vae 4, did 25), if the configurations fall "
             "to the methods equally")
    assert any(line.startswith(bound) for line in format_budget(budget))


def test_population_one_prints_no_population_lines_and_refuses_a_population_throughput():
    spec = population_spec(resources={"cpu": 2, "gpu": 0.5, "population": 1})
    budget = estimate_study(spec)
    assert budget.population == 1 and budget.tune_trials == budget.trials == 20 and budget.groups == ()
    lines = format_budget(budget)
    assert not any("population" in line or "Tune trial" in line for line in lines)
    with pytest.raises(ValueError, match="one member per Tune trial"):
        estimate_study(spec, population_images_per_sec=8000)


def test_the_cli_passes_the_population_throughput(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = CATALOG / "locatello2019.yaml"
    args = ["run", str(path), "--dry-run", "--images-per-sec", "5000", "--population-images-per-sec", "20000"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # 6 methods x 6 values x 50 seeds: 300 members per method, 38 Tune trials of up to 8 each
    assert "Tune trials: at least 228 for the 1,800 trials (beta_vae 38, factor_vae 38, dip_vae_i 38" in out
    # 38 x 8 x 19.2M images (FactorVAE 9.6M) at 20,000 images/s: 445.9 hours, x 0.5 GPU
    assert "up to 2.13 hours per Tune trial, 228 Tune trials, 223 GPU-hours and 1,783 CPU-hours in all" in out
    assert list(tmp_path.iterdir()) == []
