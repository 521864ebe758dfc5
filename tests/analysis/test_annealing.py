"""DEFT's annealing test: the IFP readout, the beta-piece proposal, one-factor data, tiny runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from disent_core.analysis.annealing import (
    AnnealingConfig,
    OneFactorData,
    annealing_test,
    freezing_index,
    ifp_from_curve,
    propose_beta_pieces,
    reference_vector,
    run_annealing,
    smooth_over_beta,
)
from disent_core.data.registry import get_dataset

T = 2000
EPSILON = 0.1


pytestmark = pytest.mark.usefixtures("one_thread")


def exponential_betas(steps: int = T) -> np.ndarray:
    return 70 * np.exp(-15 * np.arange(steps) / steps) + 1


def synthetic_kl(freeze_at: int, steps: int = T, slope: float = 0.03) -> np.ndarray:
    """0 until ``freeze_at``, then rising linearly."""
    return np.maximum(np.arange(steps) - freeze_at + 1, 0) * slope


def kl_against_beta(betas: np.ndarray, ifp: float, shape: str) -> np.ndarray:
    """A noise-free KL that is 0 for large beta, rises as beta falls and crosses EPSILON at ``ifp``.

    ``linear``: 0.05 nats per unit of beta (the issue's curve, leaving 0 at ifp + 2); ``log``:
    2 nats per e-fold of beta (leaving 0 at 1.05 ifp).
    """
    if shape == "linear":
        return np.maximum(EPSILON + 0.05 * (ifp - betas), 0)
    return np.maximum(EPSILON + 2.0 * np.log(ifp / betas), 0)


def noisy(kl: np.ndarray, seed: int) -> np.ndarray:
    """10 % per-batch noise on the KL plus a floor of |N(0, 0.01)| nats."""
    rng = np.random.default_rng(seed)
    return kl * (1 + 0.1 * rng.standard_normal(kl.size)) + 0.01 * np.abs(rng.standard_normal(kl.size))


SCHEDULE_RUNS = [(schedule, steps) for schedule in ("exponential", "linear") for steps in (200, 8000)]


# --- smoothing and readout ------------------------------------------------------------------------
def test_smoothing_is_a_running_median_over_a_window_in_log_beta() -> None:
    x = np.random.default_rng(0).random(T)
    for steps, t, half in [(T, 5, 5), (T, 300, 7), (T, 1500, 100), (200, 20, 3)]:
        betas = exponential_betas(steps)
        log_beta = np.log(betas)
        left = np.sum((np.arange(steps) < t) & (log_beta <= log_beta[t] + 0.05))
        right = np.sum((np.arange(steps) > t) & (log_beta >= log_beta[t] - 0.05))
        assert half == min(max(min(left, right), 3), 100)  # at least 3 and at most 100 steps each side
        smoothed = smooth_over_beta(betas, x[:steps], 0.05)
        assert smoothed[t] == np.median(x[t - half:t + half + 1])
        assert smoothed[0] == np.median(x[:7]) and smoothed[-1] == np.median(x[steps - 7:steps])
    betas = exponential_betas()
    np.testing.assert_array_equal(smooth_over_beta(betas, x, 0.0), x)
    with pytest.raises(ValueError, match="non-increasing"):
        smooth_over_beta(betas[::-1], x, 0.05)
    with pytest.raises(ValueError, match="window"):
        smooth_over_beta(betas, x, -0.1)


@pytest.mark.parametrize(("schedule", "steps"), SCHEDULE_RUNS)
def test_smoothing_leaves_a_monotone_kl_unchanged_and_removes_spikes(schedule: str, steps: int) -> None:
    betas = AnnealingConfig.preset(schedule, steps=steps).beta(np.arange(steps))
    kl = kl_against_beta(betas, 10.0, "log")
    inner = slice(3, -3)  # the first and last 3 steps take the median of the run's first / last 7
    np.testing.assert_array_equal(smooth_over_beta(betas, kl)[inner], kl[inner])  # no lag
    spiked = kl.copy()
    spiked[np.flatnonzero(betas > 20)[5::10]] = 0.8
    np.testing.assert_array_equal(smooth_over_beta(betas, spiked)[inner], kl[inner])


@pytest.mark.parametrize(("schedule", "steps"), SCHEDULE_RUNS)
@pytest.mark.parametrize("ifp", [10.0, 30.0])
def test_readout_of_the_issues_curve_has_no_lag(schedule: str, steps: int, ifp: float) -> None:
    betas = AnnealingConfig.preset(schedule, steps=steps).beta(np.arange(steps))
    readout = ifp_from_curve(betas, kl_against_beta(betas, ifp, "linear"))
    assert readout == pytest.approx(ifp, rel=0.01)


@pytest.mark.parametrize(("schedule", "steps"), SCHEDULE_RUNS)
@pytest.mark.parametrize("ifp", [10.0, 30.0])
@pytest.mark.parametrize("shape", ["linear", "log"])
def test_readout_of_noisy_curves_is_within_5_percent(
    schedule: str, steps: int, ifp: float, shape: str
) -> None:
    betas = AnnealingConfig.preset(schedule, steps=steps).beta(np.arange(steps))
    kl = kl_against_beta(betas, ifp, shape)
    readouts = [ifp_from_curve(betas, noisy(kl, seed)) for seed in range(5)]
    assert readouts == pytest.approx([ifp] * 5, rel=0.05)


@pytest.mark.parametrize(("schedule", "steps"), SCHEDULE_RUNS)
@pytest.mark.parametrize("bump", [1, 3])
def test_short_bumps_do_not_trigger_the_ifp(schedule: str, steps: int, bump: int) -> None:
    betas = AnnealingConfig.preset(schedule, steps=steps).beta(np.arange(steps))
    kl = noisy(kl_against_beta(betas, 10.0, "log"), 0)
    before = np.flatnonzero((betas > 20) & (betas < 60))
    middle = before[len(before) // 2]
    kl[middle:middle + bump] = 0.8  # ``bump`` batches well above epsilon, long before the IFP
    assert ifp_from_curve(betas, kl, window=0.0) > 20
    assert ifp_from_curve(betas, kl) == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("freeze_at", [100, 400, 1200])
def test_readout_finds_the_known_freezing_point_without_smoothing(freeze_at: int) -> None:
    betas, kl = exponential_betas(), synthetic_kl(freeze_at)
    expected = freeze_at + 3  # KL = 0.03 * (t - freeze_at + 1) first exceeds 0.1 at freeze_at + 3
    assert freezing_index(betas, kl, 0.1, 0.0) == expected
    crossing = np.exp(np.interp(0.1, [0.09, 0.12], np.log(betas[expected - 1:expected + 1])))
    assert ifp_from_curve(betas, kl, epsilon=0.1, window=0.0) == pytest.approx(crossing)
    assert betas[expected] < crossing < betas[expected - 1]


@pytest.mark.parametrize("freeze_at", [150, 500])
def test_smoothing_ignores_single_batch_spikes(freeze_at: int) -> None:
    rng = np.random.default_rng(1)
    betas = exponential_betas()
    kl = synthetic_kl(freeze_at) + np.abs(rng.normal(0, 0.01, T))
    spikes = rng.choice(np.arange(20, freeze_at - 20, 2), size=5, replace=False)
    kl[spikes] = 0.8  # single-batch spikes well before the true freezing point
    true_ifp = ifp_from_curve(betas, synthetic_kl(freeze_at), epsilon=0.1, window=0.0)
    raw = ifp_from_curve(betas, kl, epsilon=0.1, window=0.0)
    assert raw > betas[spikes.min()] and raw > true_ifp + 1
    assert ifp_from_curve(betas, kl, epsilon=0.1, window=0.05) == pytest.approx(true_ifp, rel=0.02)


def test_readout_waits_for_the_kl_to_collapse_first() -> None:
    kl = synthetic_kl(600)
    kl[:50] = np.linspace(3.0, 0.0, 50)  # a random encoder starts with a large KL
    assert freezing_index(exponential_betas(), kl, 0.1, 0.0) == 603


def test_readout_sums_dimensions_and_reports_nan_when_undefined() -> None:
    betas = exponential_betas()
    per_dim = np.stack([synthetic_kl(300, slope=0.013), synthetic_kl(300, slope=0.013)], axis=1)
    assert freezing_index(betas, per_dim, 0.1, 0.0) == 300 + 3  # 2 * 0.013 * 4 > 0.1 > 2 * 0.013 * 3
    assert freezing_index(betas, per_dim[:, 0], 0.1, 0.0) == 300 + 7  # 0.013 * 8 > 0.1
    assert betas[303] < ifp_from_curve(betas, per_dim, 0.1, 0.0) < betas[302]
    assert math.isnan(ifp_from_curve(betas, np.zeros(T)))  # never froze
    assert math.isnan(ifp_from_curve(betas, np.ones(T)))  # never collapsed
    with pytest.raises(ValueError, match="KL records"):
        ifp_from_curve(betas[:10], np.zeros(11))


# --- schedules ---------------------------------------------------------------------------------------
def test_schedules_and_presets_match_the_authors() -> None:
    linear = AnnealingConfig.preset("linear")
    assert (linear.steps, linear.beta_start, linear.latent_dim, linear.batch_size, linear.lr) == (
        70_000, 80.0, 10, 256, 5e-4
    )
    assert linear.beta(0) == 80 and linear.beta(35_000) == 40 and linear.beta(69_999) == 1
    expo = AnnealingConfig.preset("exponential")
    settings = (expo.steps, expo.beta_start, expo.gamma, expo.latent_dim, expo.batch_size)
    assert settings == (8000, 70, 15, 1, 64)
    assert expo.early_stop_recon == 1.0
    assert expo.beta(0) == 71
    crossing = int(np.argmax(expo.beta(np.arange(8000)) < 2))
    assert crossing == math.ceil(8000 * math.log(70) / 15)  # 70 exp(-15 t / 8000) < 1
    assert AnnealingConfig.preset("linear", steps=100).steps == 100


# --- beta pieces ---------------------------------------------------------------------------------------
def test_proposal_puts_betas_between_ifp_clusters() -> None:
    rng = np.random.default_rng(0)
    ifps = {
        "posX": rng.uniform(55, 65, 10),
        "posY": rng.uniform(50, 62, 10),
        "scale": rng.uniform(18, 24, 10),
        "orientation": rng.uniform(4, 7, 10),
        "shape": [math.nan, math.nan],
    }
    proposal = propose_beta_pieces(ifps)
    assert [sorted(c) for c in proposal.clusters] == [["posX", "posY"], ["scale"], ["orientation"]]
    assert proposal.unfrozen == ["shape"]
    assert len(proposal.betas) == 3 and proposal.betas[-1] == 1.0
    high, mid, _ = (min(np.min(ifps[n]) for n in c) for c in proposal.clusters)
    tops = [max(np.max(ifps[n]) for n in c) for c in proposal.clusters]
    assert tops[1] < proposal.betas[0] < high
    assert tops[2] < proposal.betas[1] < mid
    assert proposal.betas[0] == pytest.approx(math.sqrt(high * tops[1]))


def test_proposal_merges_close_ranges_and_handles_one_cluster() -> None:
    assert propose_beta_pieces({"a": [30, 32], "b": [26, 28]}, min_ratio=1.25).betas == [1.0]
    split = propose_beta_pieces({"a": [30, 32], "b": [26, 28]}, min_ratio=1.0)
    assert split.clusters == [["a"], ["b"]] and split.betas == [pytest.approx(math.sqrt(30 * 28)), 1.0]
    assert propose_beta_pieces({"a": [math.nan]}).betas == [1.0]
    with pytest.raises(ValueError):
        propose_beta_pieces({"a": [1.0]}, min_ratio=0.5)


# --- one-factor data and tiny runs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset():
    return get_dataset("dsprites_procedural", sizes=[3, 2, 4, 4, 4])


def test_one_factor_data_sweeps_one_factor_around_the_reference(dataset) -> None:
    reference = reference_vector(dataset, 5)
    assert np.array_equal(reference, reference_vector(dataset, 5))
    assert not all(np.array_equal(reference, reference_vector(dataset, s)) for s in range(6, 12))
    data = OneFactorData(dataset, 3, reference, np.random.default_rng(0))
    assert len(data) == 4
    expected = np.repeat(reference[None], 4, axis=0)
    expected[:, 3] = np.arange(4)
    assert np.array_equal(data.factors, expected)
    rendered = torch.from_numpy(dataset.sample_observations_from_factors(expected, np.random.default_rng(0)))
    batch = data.batch(32)
    assert batch.shape == (32, 1, 64, 64) and batch.dtype == torch.float32
    matches = (batch[:, None] == rendered[None]).flatten(2).all(2)
    assert bool(matches.any(1).all())  # every image is one of the four traversal images
    assert int(matches.any(0).sum()) >= 3


def test_a_tiny_annealing_test_end_to_end(dataset) -> None:
    config = AnnealingConfig.preset("exponential", steps=12, batch_size=8, lr=1e-3, base_channels=8)
    seen = []
    result = annealing_test(dataset, seeds=[0, 1], config=config, factors=[0, 3], on_run=seen.append)
    order = [(r.factor_name, r.seed) for r in result.runs]
    assert order == [("shape", 0), ("shape", 1), ("posX", 0), ("posX", 1)]
    assert seen == result.runs
    run = result.runs[0]
    assert run.kl_per_dim.shape == (12, 1) and run.recon.shape == (12,)
    np.testing.assert_allclose(run.betas, config.beta(np.arange(12)))
    expected = ifp_from_curve(run.betas, run.kl_per_dim, config.epsilon, config.window)
    assert run.ifp == pytest.approx(expected, nan_ok=True)
    assert set(result.ifps()) == {"shape", "posX"} and len(result.ifps()["posX"]) == 2
    rows = {row["factor"]: row for row in result.table()}
    assert rows["shape"]["runs"] == 2 and 0 <= rows["shape"]["frozen"] <= 2
    again = run_annealing(dataset, 0, 0, config)
    np.testing.assert_array_equal(again.kl_per_dim, run.kl_per_dim)


def test_early_stop_on_the_reconstruction(dataset) -> None:
    config = AnnealingConfig.preset(
        "exponential", steps=50, batch_size=4, base_channels=8, early_stop_recon=1e9
    )
    run = run_annealing(dataset, 1, 0, config)
    assert run.stopped_early and len(run.betas) == 1 and run.kl_per_dim.shape == (1, 1)
