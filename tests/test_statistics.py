"""Medians of round medians, t intervals over rounds, paired speedups and their verdicts."""

from __future__ import annotations

import numpy as np
import pytest

from inference_bench.measure.statistics import (
    NO_MEASURABLE_DIFFERENCE,
    median_interval,
    median_of_round_medians,
    speedup_interval,
    speedup_verdict,
)


def rounds_around(centres, spread=0.01, n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [list(c * (1 + spread * rng.standard_normal(n))) for c in centres]


def test_the_median_of_round_medians_ignores_one_slow_round():
    assert median_of_round_medians([[10, 11, 12], [100, 100, 100], [11, 11, 11]]) == 11


def test_the_interval_holds_the_estimate_and_widens_with_drift_between_rounds():
    steady = median_interval(rounds_around([10.0, 10.0, 10.0]))
    drifting = median_interval(rounds_around([9.0, 10.0, 11.0]))
    assert steady.low <= steady.value <= steady.high
    assert steady.high - steady.low < 0.1  # 1% noise, 200 iterations a round: tight
    assert drifting.high - drifting.low > 1.0  # the rounds disagree by 10%: the interval says so
    assert drifting.low <= 10.0 <= drifting.high


def test_a_paired_speedup_cancels_drift_that_hits_both():
    """The host slows down from round to round by 20%; the variant is 2x faster in each round."""
    drift = [1.0, 1.1, 1.2]
    baseline = rounds_around([20.0 * d for d in drift], seed=1)
    variant = rounds_around([10.0 * d for d in drift], seed=2)
    paired = speedup_interval(baseline, variant, paired=True)
    unpaired = speedup_interval(baseline, variant, paired=False)
    assert paired.low <= 2.0 <= paired.high and paired.high - paired.low < 0.05
    assert unpaired.high - unpaired.low > 3 * (paired.high - paired.low)


def test_a_speedup_whose_interval_holds_one_is_no_measurable_difference():
    baseline, variant = rounds_around([10.0, 10.3, 9.8], seed=3), rounds_around([10.1, 9.9, 10.2], seed=4)
    estimate = speedup_interval(baseline, variant, paired=True)
    assert estimate.contains(1.0)
    assert speedup_verdict(estimate.low, estimate.high) == NO_MEASURABLE_DIFFERENCE
    assert speedup_verdict(1.02, 1.10) == "faster" and speedup_verdict(0.8, 0.95) == "slower"


def _host(rng, between, n_rounds, true_ms=10.0):
    """n_rounds rounds whose medians scatter by `between` (log-normal, a rerun's spread), 50 iterations each."""
    return [list(true_ms * np.exp(between * rng.standard_normal()) * (1 + 0.01 * rng.standard_normal(50)))
            for _ in range(n_rounds)]


def test_three_rounds_cover_a_rerun_95_times_in_100():
    """Simulated reruns: the interval must hold the true latency (and speedup) about 95% of the time, as its
    name says. The bootstrap over 3 round medians used before held it 82% of the time here."""
    rng = np.random.default_rng(7)
    latency_hits = speedup_hits = 0
    trials = 400
    for _ in range(trials):
        latency_hits += median_interval(_host(rng, 0.08, 3)).contains(10.0)
        # Paired: what hits both in a round cancels; the variant's own spread remains.
        drift = np.exp(0.2 * rng.standard_normal(3))
        baseline = [list(20.0 * d * (1 + 0.01 * rng.standard_normal(50))) for d in drift]
        variant = [list(10.0 * d * np.exp(0.05 * rng.standard_normal()) * (1 + 0.01 * rng.standard_normal(50)))
                   for d in drift]
        speedup_hits += speedup_interval(baseline, variant, paired=True).contains(2.0)
    assert 0.90 <= latency_hits / trials <= 0.99
    assert 0.90 <= speedup_hits / trials <= 0.99


def test_one_round_falls_back_to_its_iterations():
    rounds = rounds_around([10.0], spread=0.05)
    estimate = median_interval(rounds)
    assert estimate.low < estimate.value < estimate.high and estimate.high - estimate.low < 0.3
    speedup = speedup_interval(rounds_around([20.0], seed=5), rounds, paired=True)
    assert speedup.low < 2.0 < speedup.high


def test_the_interval_always_holds_the_reported_median():
    rounds = [[10.0] * 5, [10.1] * 5, [10.2] * 5, [10.3] * 5, [30.0] * 5]  # one stray round pulls the mean
    estimate = median_interval(rounds)
    assert estimate.value == 10.2 and estimate.low <= 10.2 <= estimate.high


def test_the_same_inputs_give_the_same_interval():
    rounds = rounds_around([5.0, 5.1, 4.9])
    assert median_interval(rounds) == median_interval(rounds)


@pytest.mark.parametrize("rounds", [[], [[1.0], []]])
def test_empty_rounds_are_refused(rounds):
    with pytest.raises(ValueError, match="at least one latency"):
        median_interval(rounds)


def test_paired_rounds_must_match_in_number():
    with pytest.raises(ValueError, match="as many baseline rounds"):
        speedup_interval([[1.0], [1.0]], [[1.0]], paired=True)
