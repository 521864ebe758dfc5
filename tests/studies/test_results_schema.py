"""The results schema: which report keys are scores, how a row is built, how cells become parquet-safe."""

from __future__ import annotations

import math

import pandas as pd

from studies.orchestration.tracking import tracked_metrics
from studies.results import (
    as_text,
    cell,
    is_score_key,
    is_training_key,
    one_type_per_column,
    row_from_metrics,
)


def test_score_and_training_keys():
    assert is_score_key("mig.discrete_mig") and is_score_key("reconstruction.kl")
    not_scores = ("loss/recon", "kl/3", "schedule/lr.loss", "resources/gpus", "config/method", "step",
                  "evaluated")
    assert not any(is_score_key(key) for key in not_scores)
    assert is_training_key("loss/recon.x") and is_training_key("images_per_sec")
    assert not is_training_key("step")


def test_a_row_has_every_namespace_with_parquet_safe_cells():
    metrics = {"mig.discrete_mig": 0.3, "loss/recon": 12.0, "kl/0": 1.0, "step": 20, "evaluated": 1,
               "resources/gpus": 0.0, "dataset_provenance": "procedural", "odd.flag": True}
    row = row_from_metrics(metrics, {"method.betas": [1, 10], "train.steps": 20}, {"devae.betas": [1, 10]})
    assert row == {
        "train_config.method.betas": "[1, 10]", "train_config.train.steps": 20,
        "search.devae.betas": "[1, 10]",
        "evaluation_results.mig.discrete_mig": 0.3,
        "final.loss/recon": 12.0,
    }


def test_text_is_json_whatever_table_it_comes_from():
    values = (5000, True, 0.5, [1, 10], "x", None)
    assert [as_text(v) for v in values] == ["5000", "true", "0.5", "[1, 10]", "x", None]
    assert math.isnan(as_text(float("nan")))
    assert cell({"a": 1}) == '{"a": 1}' and cell(3) == 3
    table = one_type_per_column(pd.DataFrame({"mixed": [5000, "[5000, 15000]", None], "numbers": [1, 2, 3]}))
    assert table["mixed"].tolist()[:2] == ["5000", "[5000, 15000]"] and table["numbers"].tolist() == [1, 2, 3]


def test_tracking_logs_training_series_always_and_scores_only_when_evaluated():
    result = {"loss/recon": 12.0, "mig.discrete_mig": float("nan"), "images_per_sec": 900, "step": 10,
              "evaluated": 0, "diverged": 1, "dataset_provenance": "procedural", "flag": True}
    assert tracked_metrics(result, ["mig.discrete_mig"]) == {"loss/recon": 12.0, "images_per_sec": 900.0,
                                                             "diverged": 1.0}
    evaluated = {**result, "mig.discrete_mig": 0.25, "evaluated": 1}
    assert tracked_metrics(evaluated, ["mig.discrete_mig"])["mig.discrete_mig"] == 0.25


def test_a_method_without_a_kl_reports_its_information_under_its_own_name():
    from disent_core.train import Report
    from studies.orchestration.trainable import report_metrics
    from studies.results import is_score_key, is_training_key

    def metrics(name: str) -> dict[str, float]:
        return report_metrics(Report(step=3, terms={"loss": 1.0}, latent_information=[0.5, 0.0],
                                     information_name=name, schedules={}, images_per_sec=10.0))

    assert {"kl/0", "kl/1"} <= metrics("KL").keys()
    info = metrics("info")
    assert {"info/0", "info/1"} <= info.keys() and not any(k.startswith("kl/") for k in info)
    assert info["active_dims"] == 1
    assert is_training_key("info/0") and not is_score_key("info/0")
