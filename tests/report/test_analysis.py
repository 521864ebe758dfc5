"""The report statistics on synthetic results tables whose answers are known by hand."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from disent_core.errors import ConfigError
from studies.report.analysis import (
    Setting,
    check_claim,
    curve,
    importances,
    metric_mode,
    pareto_front,
    spearman,
    tolerance,
    variance_decomposition,
)
from studies.spec import validate_spec
from studies.spec.claims import GRAMMAR, Claim, Term, parse_claim

MIG = "evaluation_results.mig.discrete_mig"
DCI = "evaluation_results.dci.disentanglement"
RECON = "evaluation_results.reconstruction.reconstruction_error"
BETA = "search.beta_vae.beta"


def table_of(method: str, settings: dict[str, list], values: list[float], seed_offsets: list[float],
             metric: str = MIG) -> pd.DataFrame:
    """One row per (setting, seed): ``values[i] + seed_offsets[s]``; ``settings`` maps columns to values."""
    rows = []
    for i, value in enumerate(values):
        for s, offset in enumerate(seed_offsets):
            row = {"trial_id": f"{method}-{i}-{s}", "method": method, "seed": s, metric: value + offset}
            row.update({column: column_values[i] for column, column_values in settings.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def noisy(method: str, settings: dict[str, list], means: list[float], sigma: float, seeds: int,
          rng_seed: int, metric: str = MIG) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    rows = []
    for i, mean in enumerate(means):
        for s in range(seeds):
            row = {"trial_id": f"{method}-{i}-{s}", "method": method, "seed": s,
                   metric: mean + sigma * rng.standard_normal()}
            row.update({column: column_values[i] for column, column_values in settings.items()})
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# directions and curves


@pytest.mark.parametrize(
    ("metric", "mode"),
    [
        ("mig.discrete_mig", "max"),
        ("evaluation_results.dci.disentanglement", "max"),
        ("factor_vae.eval_accuracy", "max"),
        ("sap.SAP_score", "max"),
        ("reconstruction.reconstruction_error", "min"),
        ("evaluation_results.reconstruction.kl", "min"),
        ("unsupervised.gaussian_total_correlation", "min"),
        ("unsupervised.gaussian_wasserstein_correlation_norm", "min"),
        ("unsupervised.mutual_info_score", "min"),
    ],
)
def test_metric_mode(metric, mode):
    assert metric_mode(metric) == mode


def test_curve_sorts_numeric_settings_and_keeps_list_choices_in_order_of_appearance():
    beta = table_of("beta_vae", {BETA: [4.0, 1.0, 16.0]}, [0.3, 0.1, 0.2], [-0.01, 0.0, 0.01, 0.02])
    devae = table_of("devae", {"search.devae.betas": ["[1, 10, 40]", "[1, 10]"]}, [0.5, 0.4], [0.0, 0.1])
    both = pd.concat([beta, devae], ignore_index=True)
    out = curve(both, method="beta_vae", metric=MIG, param=BETA)
    assert list(out.columns) == ["setting", "median", "q25", "q75", "n"]
    assert out["setting"].tolist() == [1.0, 4.0, 16.0]
    assert out["median"].tolist() == pytest.approx([0.105, 0.305, 0.205])
    assert out["n"].tolist() == [4, 4, 4]
    assert out["q25"].iloc[0] == pytest.approx(0.0975) and out["q75"].iloc[0] == pytest.approx(0.1125)
    lists = curve(both, method="devae", metric=MIG, param="search.devae.betas")
    assert lists["setting"].tolist() == ["[1, 10, 40]", "[1, 10]"]
    assert lists["median"].tolist() == pytest.approx([0.55, 0.45])


# --------------------------------------------------------------------------------------------------
# tolerance


def test_tolerance_on_a_log_grid_is_the_share_of_the_log_range_within_ten_percent():
    # beta = 2^0 .. 2^6, evenly spaced in log: the end settings own half a step, the others one step
    # of six; the settings 4, 8, 16 are within 10 % of the best (0.95, 1.0, 0.92 >= 0.9)
    betas = [1, 2, 4, 8, 16, 32, 64]
    table = table_of("beta_vae", {BETA: betas}, [0.5, 0.6, 0.95, 1.0, 0.92, 0.7, 0.4], [-0.01, 0.0, 0.01])
    result = tolerance(table, method="beta_vae", metric=MIG, params=[(BETA, True)], n_boot=200)
    assert result.index == pytest.approx(3 / 6)
    assert result.ci_low == pytest.approx(0.5) and result.ci_high == pytest.approx(0.5)
    assert result.best_median == pytest.approx(1.0)
    assert result.best_config == {BETA: 8}
    assert result.seed_std_at_best == pytest.approx(0.01)
    assert (result.n_configs, result.min_seeds, result.params) == (7, 3, (BETA,))
    # the end settings: 1 and 2 within own half a step plus one step
    ends = table_of("beta_vae", {BETA: betas}, [1.0, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0])
    assert tolerance(ends, method="beta_vae", metric=MIG, params=[(BETA, True)], n_boot=10).index == (
        pytest.approx(1.5 / 6)
    )


def test_tolerance_on_an_uneven_grid_uses_the_midpoints_in_log_or_linear_space():
    betas = [1, 10, 20, 40, 80]
    table = table_of("beta_vae", {BETA: betas}, [0.2, 0.5, 0.95, 1.0, 0.3], [0.0, 0.01, -0.01])
    log = tolerance(table, method="beta_vae", metric=MIG, params=[(BETA, True)], n_boot=10)
    # 20 and 40 own [(ln 10 + ln 20) / 2, (ln 40 + ln 80) / 2], of length ln(3200 / 200) / 2 = ln 4
    assert log.index == pytest.approx(math.log(4) / math.log(80))
    linear = tolerance(table, method="beta_vae", metric=MIG, params=[(BETA, False)], n_boot=10)
    assert linear.index == pytest.approx((60 - 15) / 79)


def test_a_flat_metric_is_fully_tolerant_and_a_peaked_one_barely():
    betas = [2.0**k for k in range(9)]
    flat = table_of("beta_vae", {BETA: betas}, [0.5] * 9, [-0.01, 0.0, 0.01])
    result = tolerance(flat, method="beta_vae", metric=MIG, params=[(BETA, True)], n_boot=100)
    assert result.index == 1.0 and result.ci_low == 1.0 and result.ci_high == 1.0
    peaked = table_of("beta_vae", {BETA: betas}, [0.1, 0.1, 0.2, 0.3, 0.9, 0.3, 0.2, 0.1, 0.1], [0.0] * 3)
    result = tolerance(peaked, method="beta_vae", metric=MIG, params=[(BETA, True)], n_boot=100)
    assert result.index == pytest.approx(1 / 8)


def test_a_min_metric_counts_the_settings_within_ten_percent_above_the_lowest_error():
    table = table_of("beta_vae", {BETA: [1, 2, 3, 4, 5]}, [100, 105, 108, 150, 300], [0.0, 0.0, 0.0], RECON)
    result = tolerance(table, method="beta_vae", metric=RECON, params=[(BETA, False)], n_boot=10)
    # the settings 1, 2, 3 (<= 110) own [1, 3.5] of [1, 5]
    assert result.mode == "min" and result.index == pytest.approx(2.5 / 4)
    assert result.best_median == 100 and result.best_config == {BETA: 1}
    as_max = tolerance(table, method="beta_vae", metric=RECON, params=[(BETA, False)], n_boot=10, mode="max")
    assert as_max.index == pytest.approx(0.5 / 4)


def test_several_or_categorical_params_count_the_share_of_configurations():
    betas = ["[1, 10]", "[1, 10, 40]", "[1, 10, 20, 40, 80]"] * 2
    scales = [1.0] * 3 + [0.5] * 3
    table = table_of(
        "devae", {"search.devae.betas": betas, "search.devae.scale": scales},
        [1.0, 0.95, 0.3, 0.2, 0.1, 0.5], [0.0, 0.01, -0.01],
    )
    params = [("search.devae.betas", False), ("search.devae.scale", False)]
    result = tolerance(table, method="devae", metric=MIG, params=params, n_boot=50)
    assert result.index == pytest.approx(2 / 6) and result.interval is False
    assert result.best_config == {"search.devae.betas": "[1, 10]", "search.devae.scale": 1.0}
    # one categorical parameter: the share of its choices
    one = table_of("devae", {"search.devae.betas": betas[:3]}, [1.0, 0.5, 0.5], [0.0, 0.0, 0.0])
    result = tolerance(one, method="devae", metric=MIG, params=params[:1], n_boot=10)
    assert result.index == pytest.approx(1 / 3) and result.n_configs == 3


def test_a_fixed_method_has_index_one_and_a_single_setting():
    table = table_of("vae", {BETA: [math.nan]}, [0.2], [0.0, 0.1, 0.2, 0.3])
    result = tolerance(table, method="vae", metric=MIG, params=[], n_boot=50)
    assert (result.index, result.ci_low, result.ci_high, result.n_configs) == (1.0, 1.0, 1.0, 1)
    assert result.best_median == pytest.approx(0.35) and result.min_seeds == 4
    # a searched column with one value does not vary either; the column is NaN for this method
    assert tolerance(table, method="vae", metric=MIG, params=[(BETA, True)], n_boot=5).best_config == {}
    single = table_of("vae", {}, [0.2], [0.0])
    assert math.isnan(tolerance(single, method="vae", metric=MIG, params=[], n_boot=5).seed_std_at_best)


def test_tolerance_of_an_absent_method_or_metric_is_an_error():
    table = table_of("beta_vae", {BETA: [1, 2]}, [0.1, 0.2], [0.0])
    with pytest.raises(ValueError, match="devae"):
        tolerance(table, method="devae", metric=MIG, params=[])
    with pytest.raises(KeyError, match="dci"):
        tolerance(table, method="beta_vae", metric="dci.disentanglement", params=[])


def test_the_bootstrap_interval_contains_the_estimate_narrows_with_seeds_and_is_reproducible():
    xs = list(range(11))
    means = [1.0 - 0.03 * abs(x - 5) for x in xs]  # within 10 % of 1.0 for |x - 5| <= 3.33
    widths = []
    for seeds in (3, 40):
        table = noisy("beta_vae", {BETA: xs}, means, sigma=0.05, seeds=seeds, rng_seed=7)
        result = tolerance(table, method="beta_vae", metric=MIG, params=[(BETA, False)], n_boot=400, seed=1)
        assert result.ci_low <= result.index <= result.ci_high
        widths.append(result.ci_high - result.ci_low)
        again = tolerance(table, method="beta_vae", metric=MIG, params=[(BETA, False)], n_boot=400, seed=1)
        assert again == result
    assert widths[1] < widths[0]
    # the population value is 0.7 (x in 2..8 own [1.5, 8.5] of [0, 10]); many seeds get close
    assert abs(result.index - 0.7) <= 0.1


def test_repeated_trials_of_one_configuration_and_seed_count_once():
    table = table_of("beta_vae", {BETA: [1, 2]}, [1.0, 0.5], [0.0, 0.1])
    repeated = pd.concat([table, table.iloc[:1].assign(**{MIG: 0.8})], ignore_index=True)
    result = tolerance(repeated, method="beta_vae", metric=MIG, params=[(BETA, False)], n_boot=5)
    assert result.min_seeds == 2 and result.best_median == pytest.approx((0.9 + 1.1) / 2)


# --------------------------------------------------------------------------------------------------
# variance decomposition, correlation, fronts, importances


def frame(rows: list[tuple[str, Any, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"method": m, "search.p": p, "seed": s, MIG: y} for m, p, s, y in rows]
    )


def test_variance_decomposition_of_pure_seed_noise_pure_method_and_pure_config_effects():
    seed_only = frame([("a", 1, s, y) for s, y in enumerate([1.0, 2.0, 3.0])]
                      + [("a", 2, s, y) for s, y in enumerate([1.0, 2.0, 3.0])])
    shares = variance_decomposition(seed_only, MIG, ["search.p"])
    assert (shares["method"], shares["hyperparameters"], shares["seed"]) == pytest.approx((0, 0, 1))
    assert shares["total_variance"] == pytest.approx(2 / 3)
    method_only = frame([("a", 1, s, 1.0) for s in range(3)] + [("b", math.nan, s, 5.0) for s in range(3)])
    shares = variance_decomposition(method_only, MIG, ["search.p"])
    assert (shares["method"], shares["hyperparameters"], shares["seed"]) == pytest.approx((1, 0, 0))
    config_only = frame([("a", 1, s, 1.0) for s in range(2)] + [("a", 2, s, 3.0) for s in range(2)])
    shares = variance_decomposition(config_only, MIG, ["search.p"])
    assert (shares["method"], shares["hyperparameters"], shares["seed"]) == pytest.approx((0, 1, 0))


def test_variance_decomposition_of_mixed_effects_matches_the_hand_computed_sums_of_squares():
    # grand mean 8; method means 4, 12: SS 8 * 16 = 128; config means 2, 6, 10, 14: SS 8 * 4 = 32;
    # seeds +-1 around each: SS 8; total 168
    table = frame([
        ("a", 1, 0, 1.0), ("a", 1, 1, 3.0), ("a", 2, 0, 5.0), ("a", 2, 1, 7.0),
        ("b", 1, 0, 9.0), ("b", 1, 1, 11.0), ("b", 2, 0, 13.0), ("b", 2, 1, 15.0),
    ])
    shares = variance_decomposition(table, "mig.discrete_mig", ["search.p", "search.absent"])
    assert shares == pytest.approx(
        {"method": 128 / 168, "hyperparameters": 32 / 168, "seed": 8 / 168, "total_variance": 21.0}
    )


def test_variance_decomposition_of_a_constant_metric_is_all_zero():
    table = frame([("a", 1, 0, 0.3), ("a", 2, 0, 0.3), ("b", 1, 1, 0.3)])
    assert variance_decomposition(table, MIG, ["search.p"]) == {
        "method": 0.0, "hyperparameters": 0.0, "seed": 0.0, "total_variance": 0.0
    }


def test_spearman_of_monotone_metrics_is_one_and_ignores_missing_values():
    x = np.linspace(0.1, 1.0, 10)
    table = pd.DataFrame({MIG: x, DCI: np.exp(5 * x), RECON: -(x**3)})
    table.loc[3, DCI] = math.nan
    corr = spearman(table, [MIG, "dci.disentanglement", RECON])
    assert corr.loc[MIG, "dci.disentanglement"] == pytest.approx(1.0)
    assert corr.loc[MIG, RECON] == pytest.approx(-1.0)
    assert list(corr.index) == [MIG, "dci.disentanglement", RECON]


def test_pareto_front_of_a_hand_made_set():
    # (error, mig): error minimised, mig maximised
    points = {"a": (1.0, 0.1), "b": (2.0, 0.5), "c": (3.0, 0.9), "d": (2.5, 0.4), "e": (1.0, 0.05),
              "f": (3.0, 0.9), "g": (4.0, 0.9), "h": (math.nan, 1.0)}
    table = pd.DataFrame({RECON: [p[0] for p in points.values()], MIG: [p[1] for p in points.values()],
                          "method": ["m", "m", "m", "m", "n", "n", "n", "n"]}, index=list(points))
    front = pareto_front(table, x=RECON, y=MIG, x_mode="min", y_mode="max")
    assert list(front) == ["a", "b", "c", "f"]
    assert list(pareto_front(table, x=RECON, y=MIG)) == ["a", "b", "c", "f"]  # modes from the metric names
    assert list(pareto_front(table, x=RECON, y=MIG, x_mode="max", y_mode="max")) == ["g"]
    per_method = pareto_front(table, x=RECON, y=MIG, by="method")
    assert list(per_method) == ["a", "b", "c", "e", "f"]


def test_importances_rank_the_only_parameter_that_matters_first():
    a_values, b_values = [0.1, 0.2, 0.4, 0.8, 1.6], ["x", "y", "z", "w", "v"]
    grid = [(a, b) for a in a_values for b in b_values]
    table = table_of(
        "m", {"search.m.a": [a for a, _ in grid], "search.m.b": [b for _, b in grid]},
        [math.log(a) for a, _ in grid], [0.0, 0.001, -0.001],
    )
    params = [("search.m.a", True), ("search.m.b", False)]
    result = importances(table, method="m", metric=MIG, params=params, mode="max")
    assert set(result) == {"search.m.a", "search.m.b"}
    assert result["search.m.a"] > 0.9 and sum(result.values()) == pytest.approx(1.0)
    assert importances(table, method="m", metric=MIG, params=params, mode="max") == result
    fanova = importances(table, method="m", metric=MIG, params=params, mode="max", evaluator="fanova", seed=3)
    assert max(fanova, key=fanova.get) == "search.m.a"
    one = table_of("m", {"search.m.a": a_values}, [1.0, 2.0, 3.0, 4.0, 5.0], [0.0])
    assert importances(one, method="m", metric=MIG, params=[("search.m.a", True)], mode="max") == {}
    few = table.iloc[:9]  # three configurations
    assert importances(few, method="m", metric=MIG, params=params) == {}


# --------------------------------------------------------------------------------------------------
# claims


def test_parse_claim_reads_both_forms_and_main_keys():
    claim = parse_claim("devae tolerance(mig) > beta_vae tolerance(mig)")
    assert claim == Claim(
        "devae tolerance(mig) > beta_vae tolerance(mig)",
        Term("devae", "tolerance", "mig.discrete_mig"),
        ">",
        Term("beta_vae", "tolerance", "mig.discrete_mig"),
    )
    claim = parse_claim("  beta_vae best( dci.completeness )>=0.5")
    assert claim.lhs == Term("beta_vae", "best", "dci.completeness") and claim.op == ">=" and claim.rhs == 0.5
    claim = parse_claim("devae median(evaluation_results.reconstruction.kl) <= -1e-3")
    assert claim.lhs.metric == "reconstruction.kl" and claim.rhs == pytest.approx(-0.001)
    assert parse_claim("a median(factor_vae) < b median(beta_vae)").rhs == Term(
        "b", "median", "beta_vae.eval_accuracy"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("devae tolerance(mig) beta_vae tolerance(mig)", "no comparison operator"),
        ("devae tolerance(mig) > beta_vae tolerance(mig) > 0", "2 comparison operators"),
        ("devae mean(mig) > 0.5", "unknown statistic 'mean'"),
        ("devae tolerance(migg) > 0.5", "unknown metric 'migg'"),
        ("devae tolerance mig > 0.5", "the left side"),
        ("0.5 < devae tolerance(mig)", "the left side"),
        ("devae tolerance(mig) > lots", "the right side 'lots'"),
        ("devae tolerance(mig..x) > 1", "not a metric key"),
        ("", "empty"),
    ],
)
def test_parse_claim_errors_name_the_problem_and_show_the_grammar(text, reason):
    with pytest.raises(ValueError) as info:
        parse_claim(text)
    message = str(info.value)
    assert reason in message and GRAMMAR in message
    assert "devae tolerance(mig) > beta_vae tolerance(mig)" in message


def claims_table(seeds: int = 5) -> tuple[pd.DataFrame, dict[str, list[tuple[str, bool]]]]:
    """DeVAE flat over its 3 x 2 grid, beta-VAE peaked over 5 betas; small seed noise."""
    offsets = list(np.linspace(-0.02, 0.02, seeds))
    betas = ["[1, 10]", "[1, 10, 40]", "[1, 10, 20, 40, 80]"] * 2
    devae = table_of(
        "devae", {"search.devae.betas": betas, "search.devae.scale": [1.0] * 3 + [0.5] * 3},
        [0.50, 0.52, 0.51, 0.49, 0.50, 0.51], offsets,
    )
    beta = table_of("beta_vae", {BETA: [1, 10, 20, 40, 80]}, [0.1, 0.3, 0.7, 0.35, 0.2], offsets)
    devae[DCI] = devae[MIG] + 0.2
    beta[DCI] = beta[MIG] + 0.2
    params = {
        "devae": [("search.devae.betas", False), ("search.devae.scale", False)],
        "beta_vae": [(BETA, True)],
    }
    return pd.concat([devae, beta], ignore_index=True), params


def test_a_clearly_supported_claim():
    table, params = claims_table()
    result = check_claim(parse_claim("devae tolerance(mig) > beta_vae tolerance(mig)"), table,
                         params=params, n_boot=300)
    assert result.verdict == "supported"
    # only beta = 20 is within 10 %: it owns [(ln 10 + ln 20) / 2, (ln 20 + ln 40) / 2] of [ln 1, ln 80]
    assert result.lhs == 1.0 and result.rhs == pytest.approx(math.log(4) / 2 / math.log(80))
    assert result.difference == pytest.approx(result.lhs - result.rhs)
    assert 0 < result.ci_low <= result.difference <= result.ci_high
    assert "lies above 0" in result.detail
    assert check_claim(parse_claim("devae tolerance(mig) > beta_vae tolerance(mig)"), table,
                       params=params, n_boot=300) == result


def test_a_clearly_unsupported_claim_says_the_opposite_holds():
    table, params = claims_table()
    result = check_claim(parse_claim("beta_vae tolerance(mig) >= devae tolerance(mig)"), table,
                         params=params, n_boot=300)
    assert result.verdict == "not supported" and result.ci_high < 0
    assert "the opposite holds" in result.detail
    undecided = check_claim(parse_claim("devae best(mig) > 0.52"), table, params=params, n_boot=300)
    assert undecided.verdict == "not supported" and undecided.ci_low < 0 < undecided.ci_high
    assert "includes 0" in undecided.detail
    assert check_claim(parse_claim("beta_vae best(mig) > devae best(mig)"), table,
                       params=params, n_boot=300).verdict == "supported"
    below = check_claim(parse_claim("beta_vae median(mig) < 0.4"), table, params=params, n_boot=300)
    assert below.verdict == "supported" and below.lhs == pytest.approx(0.3) and below.rhs == 0.4


def test_one_method_two_metrics_are_resampled_jointly():
    table, params = claims_table()
    # dci = mig + 0.2 trial by trial: the same seeds on both sides give a difference of exactly 0.2
    result = check_claim(parse_claim("devae best(dci) > devae best(mig)"), table, params=params, n_boot=300)
    assert result.verdict == "supported"
    assert result.ci_low == pytest.approx(0.2) and result.ci_high == pytest.approx(0.2)


def test_not_enough_trials():
    table, params = claims_table(seeds=2)
    result = check_claim(parse_claim("devae tolerance(mig) > beta_vae tolerance(mig)"), table,
                         params=params, n_boot=100)
    assert result.verdict == "not enough trials"
    assert "devae: 2 seed(s) per configuration, need 3" in result.detail
    assert "beta_vae: 2 seed(s) per configuration, need 3" in result.detail
    assert result.lhs == 1.0  # the measured numbers are still shown
    table, params = claims_table()
    absent = check_claim(parse_claim("dip_vae_i best(mig) > 0.1"), table, params=params, n_boot=10)
    assert absent.verdict == "not enough trials"
    assert "dip_vae_i: no trial with mig.discrete_mig" in absent.detail
    assert math.isnan(absent.lhs) and absent.rhs == 0.1
    missing = check_claim(parse_claim("devae best(sap) > 0.1"), table, params=params, n_boot=10)
    assert missing.verdict == "not enough trials" and "no trial has sap.SAP_score" in missing.detail
    devae = table[table["method"] == "devae"]
    fixed = devae.assign(**{"search.devae.scale": 1.0, "search.devae.betas": "[1]"})
    one_config = check_claim(parse_claim("devae tolerance(mig) > 0.5"), fixed, params=params, n_boot=10)
    assert one_config.verdict == "not enough trials"
    assert "devae: 1 configuration(s), need 2" in one_config.detail


def test_methods_missing_from_params_use_their_searched_columns():
    table, params = claims_table()
    inferred = check_claim(parse_claim("devae tolerance(mig) > 0.5"), table, params={}, n_boot=50)
    given = check_claim(parse_claim("devae tolerance(mig) > 0.5"), table, params=params, n_boot=50)
    assert inferred == given


def test_setting_is_a_plain_record():
    setting = Setting("devae", (("search.devae.scale", 0.5),))
    assert setting.as_dict() == {"search.devae.scale": 0.5}


# --------------------------------------------------------------------------------------------------
# the spec refuses claims it cannot check


SPEC: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "dsprites_procedural"},
    "model": {"latent_dim": 4},
    "train": {"steps": 200, "batch_size": 8, "report_every": 100},
    "methods": {
        "beta_vae": {"beta": {"search": "log_float", "low": 1, "high": 16}},
        "annealed_vae": {"c_max": {"search": "float", "low": 5, "high": 30}, "gamma": 100},
    },
    "seeds": [0, 1],
    "evaluation": {"protocol": "fast", "metrics": ["mig", "reconstruction"]},
    "objective": {"metric": "mig.discrete_mig", "mode": "max"},
    "search": {"algorithm": "tpe", "num_trials": 2},
}


def with_claims(claims: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(SPEC)
    data["report"] = {"claims": claims}
    return data


def test_the_spec_accepts_claims_it_can_check():
    claims = [
        "beta_vae tolerance(mig) > annealed_vae tolerance(mig)",
        "annealed_vae best(reconstruction.kl) < 50",
    ]
    assert validate_spec(with_claims(claims)).report.claims == claims


def test_the_spec_lists_each_bad_claim_on_its_own_line():
    claims = [
        "beta_vae tolerance(mig) > annealed_vae tolerance(mig)",
        "beta_vae tolerance(mig) annealed_vae",
        "devae tolerance(mig) > beta_vae tolerance(mig)",
        "beta_vae best(dci) > 0.2",
        "beta_vae best(mig.nonsense) > 0.2",
    ]
    with pytest.raises(ConfigError) as info:
        validate_spec(with_claims(claims), "spec.yaml")
    first, *lines = str(info.value).splitlines()
    lines = [line.strip() for line in lines]
    assert first == "invalid study spec spec.yaml:"
    assert len(lines) == 4
    assert lines[0].startswith("report.claims[1]: cannot read claim") and "no comparison operator" in lines[0]
    assert lines[1] == (
        "report.claims[2]: method 'devae' is not in this study; its methods: beta_vae, annealed_vae"
    )
    assert lines[2].startswith("report.claims[3]: dci.disentanglement is not evaluated; list dci under")
    assert lines[3] == "report.claims[4]: mig has no score 'nonsense'; its scores are mig.discrete_mig"


def test_a_one_configuration_tolerance_is_drawn_as_not_measurable():
    """A method searched over one configuration tolerates it trivially (index 1): the figure draws no
    bar for it and says so, where a measured method gets its bar."""
    import matplotlib.pyplot as plt

    from studies.report.analysis import Tolerance
    from studies.report.figures import tolerance as tolerance_figure

    measured = Tolerance("beta_vae", "mig.discrete_mig", 0.4, 0.3, 0.6, 0.1, {"beta": 4.0}, 0.01, 6, 2,
                         ("search.beta_vae.beta",), interval=True)
    single = Tolerance("annealed_vae", "mig.discrete_mig", 1.0, float("nan"), float("nan"), 0.1,
                       {"c_max": 10.0}, float("nan"), 1, 2, ())
    fig = tolerance_figure([measured, single], ["beta_vae", "annealed_vae"])
    ax = fig.axes[0]
    assert [round(bar.get_width(), 6) for bar in ax.patches] == [0.4, 0.0]
    assert [t.get_text() for t in ax.texts] == ["not measurable (one configuration)"]
    plt.close(fig)
