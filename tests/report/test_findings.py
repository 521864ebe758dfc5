"""The one-sentence findings of a study: trends along the most widely searched parameter."""

import pandas as pd

from studies.report.findings import findings, method_finding


def _table() -> pd.DataFrame:
    rows = []
    for beta, recon, active, mig in ((1, 30.0, 9, 0.05), (4, 52.0, 6, 0.21), (16, 95.0, 3, 0.12)):
        for seed, wobble in ((0, -1.0), (1, 1.0)):
            rows.append({
                "method": "beta_vae", "seed": seed, "search.beta_vae.beta": float(beta),
                "evaluation_results.reconstruction.reconstruction_error": recon + wobble,
                "final.active_dims": active, "final.loss/recon": recon,
                "evaluation_results.mig.discrete_mig": mig + wobble / 100,
            })
    rows.append({"method": "annealed_vae", "seed": 0, "search.annealed_vae.c_max": 5.0,
                 "evaluation_results.reconstruction.reconstruction_error": 40.0, "final.active_dims": 5,
                 "evaluation_results.mig.discrete_mig": 0.1})
    return pd.DataFrame(rows)


def test_a_searched_parameter_gives_the_trend_of_reconstruction_active_dims_and_the_objective():
    line = method_finding(_table(), "beta_vae", "mig.discrete_mig")
    assert line == (
        "beta_vae (medians of 6 trials): as beta goes from 1 to 16, reconstruction error rises from 30 "
        "to 95, active dimensions fall from 9 to 3 and mig.discrete_mig goes from 0.05 to 0.12 "
        "(best 0.21 at beta 4)"
    )


def test_without_a_reconstruction_score_the_training_loss_is_followed():
    table = _table().drop(columns=["evaluation_results.reconstruction.reconstruction_error"])
    assert "reconstruction loss rises from 30 to 95" in method_finding(table, "beta_vae", None)


def test_one_configuration_or_no_trial_has_no_trend():
    lines = findings(_table(), ["beta_vae", "annealed_vae", "factor_vae"], "mig.discrete_mig")
    assert lines[1] == "annealed_vae: one configuration (or categorical choices only), so no trend to tell"
    assert lines[2] == "factor_vae: no completed trial"


def test_a_categorical_parameter_is_not_a_trend():
    table = _table()
    table["search.beta_vae.beta"] = table["search.beta_vae.beta"].map(lambda b: f"[{b}, 2]")
    assert "no trend" in method_finding(table, "beta_vae", "mig.discrete_mig")
