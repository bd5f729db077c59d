"""The host-state check: which cycles the probes around them call disturbed, and which cycles a speedup counts."""

from __future__ import annotations

import math

import pytest

from inference_bench.measure.host import HostProbe, disturbed_cycles, disturbed_share, kept_cycles
from inference_bench.measure.statistics import paired_block_speedup


def test_a_cycle_is_disturbed_when_either_probe_around_it_is_slow():
    # Process 0: probes before cycles 0, 1, 2 and after 2; the probe between cycles 1 and 2 reads 10% slow.
    probes = [[8.0, 8.1, 8.8, 8.0], [8.2, 8.3, 8.1]]
    assert disturbed_cycles(probes, [3, 2], 0.07) == [[False, True, True], [False, False]]
    # The limit follows the comparison's faster probes, wherever they were...
    assert disturbed_cycles([[8.6, 8.6, 8.6], [8.0, 8.0, 8.0]], [2, 2], 0.07) == [[True, True], [False, False]]
    # ... and not a few stray fast probes (6.6 below a host that ran at 7.5-8.0 otherwise).
    probes = [[6.6, 7.5, 7.6, 7.9], [7.6, 7.7, 8.0, 8.9], [7.5, 7.8, 7.6, 7.7]]
    assert disturbed_cycles(probes, [3, 3, 3], 0.07) == [[False] * 3, [False, False, True], [False] * 3]


def test_no_probes_or_a_slowdown_of_zero_disturbs_nothing():
    assert disturbed_cycles([[], []], [3, 2], 0.07) == [[False] * 3, [False] * 2]
    assert disturbed_cycles([[8.0, 9.0, 8.0]], [2], 0.0) == [[False, False]]
    assert disturbed_cycles([[], [8.0, 9.0, 8.0]], [2, 2], 0.07) == [[False, False], [True, True]]
    with pytest.raises(ValueError, match="probes"):
        disturbed_cycles([[8.0, 8.0]], [2], 0.07)


def test_a_speedup_counts_the_undisturbed_cycles_of_at_least_two_processes():
    assert kept_cycles([[False, True], [True, False], [True, True]]) == [[True, False], [False, True], [False, False]]
    assert kept_cycles([[False, True], [True, True], [True, True]]) is None  # one process left: count them all
    assert disturbed_share([[False, True], [True, True]]) == 0.75
    assert disturbed_share([]) is None


def test_the_paired_speedup_leaves_the_disturbed_cycles_and_empty_processes_out():
    baseline = [[10.0, 10.0, 10.0], [10.0, 10.0, 10.0], [10.0, 10.0, 10.0]]
    variant = [[5.0, 6.0, 5.0], [5.0, 5.0, 6.0], [6.0, 6.0, 6.0]]  # 6.0: timed while the host was disturbed
    kept = kept_cycles([[False, True, False], [False, False, True], [True, True, True]])
    estimate = paired_block_speedup(baseline, variant, kept)
    assert estimate.value == pytest.approx(2.0) and estimate.low == pytest.approx(2.0)
    assert paired_block_speedup(baseline, variant).value < 1.85  # every cycle, mixed
    with pytest.raises(ValueError, match="kept"):
        paired_block_speedup(baseline, variant, [[True]])


def test_the_probe_times_a_chain_of_small_multiplies():
    ms = HostProbe()()
    assert 0 < ms < 5000 and math.isfinite(ms)
