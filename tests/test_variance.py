"""Where a measurement's variance lies, level by level (Kalibera and Jones), and the design it points to."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from inference_bench.report.variance import (
    cycles_recommended,
    level_variances,
    pair_variances,
    processes_for_target,
    variance_markdown,
    variance_table,
)


def nested(rng, processes=40, blocks=30, calls=20, sd=(0.05, 0.03, 0.02), ms=10.0):
    """[process][block][call] latencies whose log has a known spread at each level: calls, blocks, processes."""
    call_sd, block_sd, process_sd = sd
    return [[list(ms * np.exp(p + b + rng.normal(0, call_sd, calls)))
             for b in rng.normal(0, block_sd, blocks)]
            for p in rng.normal(0, process_sd, processes)]


def test_each_level_gets_its_own_share_of_the_variance():
    levels = level_variances(nested(np.random.default_rng(0)))
    assert math.sqrt(levels["S1"]) == pytest.approx(0.05, rel=0.05)
    assert math.sqrt(levels["S2"]) == pytest.approx(0.03, rel=0.1)
    assert math.sqrt(levels["S3"]) == pytest.approx(0.02, rel=0.25)
    # The biased level variances include what the levels below leave in a mean (T2 = S2 + S1 / calls).
    assert levels["T2"] == pytest.approx(levels["S2"] + levels["S1"] / 20)


def test_a_level_without_its_own_variance_gets_none():
    levels = level_variances(nested(np.random.default_rng(1), sd=(0.05, 0.0, 0.0)))
    assert levels["S2"] < 0.0002 and levels["S3"] < 0.0002


def test_pairing_cancels_what_both_sides_share():
    rng = np.random.default_rng(2)
    drift = rng.normal(0, 0.1, (5, 8))  # the host, moving both sides of every cycle alike
    baseline = [list(20.0 * np.exp(d)) for d in drift]
    variant = [list(5.0 * np.exp(d + rng.normal(0, 0.01, 8))) for d in drift]
    pair = pair_variances(baseline, variant)
    assert math.sqrt(pair["cycle"]) == pytest.approx(0.01, rel=0.3)  # the host's 10% is gone


@pytest.mark.parametrize("process_cost, cycle_cost, cycle_var, process_var, expected", [
    (10.0, 1.0, 0.04**2, 0.02**2, 7),  # sqrt(10 * 4) = 6.3: processes cost, cycles vary
    (10.0, 1.0, 0.01**2, 0.04**2, 1),  # the process level dominates: cycles buy nothing
    (10.0, 1.0, 0.01**2, 0.0, 100),  # no process variance: as many cycles as allowed
])
def test_kalibera_and_jones_choose_the_cycles_per_process(process_cost, cycle_cost, cycle_var, process_var, expected):
    assert cycles_recommended(process_cost, cycle_cost, cycle_var, process_var) == expected


def test_the_processes_for_a_target_follow_the_spread():
    assert processes_for_target(0.0, 0.01**2, 3, 0.03) == 3  # t(2) = 4.3 x 1% / sqrt(3) = 2.5%
    assert processes_for_target(0.0, 0.03**2, 3, 0.03) > processes_for_target(0.0, 0.02**2, 3, 0.03)
    assert processes_for_target(0.0, 0.5**2, 3, 0.03, most=50) == 51  # out of reach


def test_the_table_has_a_row_per_variant_and_pairs_each_with_the_baseline_timed_beside_it():
    rng = np.random.default_rng(3)
    base = nested(rng, processes=3, blocks=4, calls=5)
    faster = [[list(np.array(block) / 4) for block in process] for process in base]
    common = {"hardware": "cpu", "model": "m", "batch_size": 1, "sequence_length": 16, "status": "ok",
              "comparison": {"id": "c1"}, "design_costs": {"load_s": 10.0, "cycle_s": 1.0}}
    table = variance_table([{**common, "variant": "pytorch", "block_latencies_ms": base},
                            {**common, "variant": "ort-int8", "block_latencies_ms": faster}], target=0.03)
    assert list(table["variant"]) == ["pytorch", "ort-int8"]
    assert pd.isna(table.loc[0, "pair_cycle_sd"]) and table.loc[1, "pair_cycle_sd"] < 1e-9  # exactly 4x faster
    assert table.loc[1, "processes"] == 3 and table.loc[1, "blocks_per_process"] == 4
    text = variance_markdown(table, "cpu (Test CPU)")
    assert text.startswith("Measured on cpu (Test CPU)") and "| ort-int8 | 1 | 16 | 3 × 4 × 5 |" in text
