"""What to deploy, on synthetic summaries whose answer is known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from inference_bench.report.recommend import (
    Constraints,
    cheapest,
    cost_per_million,
    largest_batch,
    recommend,
    recommendation_lines,
)


def row(variant, speedup, low=None, high=None, accuracy=1.0, p99=10.0, batch=1, seq=128, model_bytes=100e6,
        rss=500e6, hardware="m1", throughput=100.0):
    return {"hardware": hardware, "model": "enc", "variant": variant, "batch_size": batch, "sequence_length": seq,
            "status": "ok", "speedup_vs_pytorch": speedup, "speedup_ci_low": speedup if low is None else low,
            "speedup_ci_high": speedup if high is None else high, "accuracy_relative": accuracy,
            "accuracy_gate": 0.99, "p99_ms": p99, "throughput_seq_per_s": throughput, "model_bytes": model_bytes,
            "peak_rss_bytes": rss, "peak_gpu_memory_bytes": None}


def only(frame: pd.DataFrame) -> pd.Series:
    assert len(frame) == 1
    return frame.iloc[0]


def test_a_faster_variant_that_fails_the_gate_is_not_chosen():
    summary = pd.DataFrame([row("pytorch", 1.0), row("ort-int8", 6.0, accuracy=0.984),
                            row("ort-fp32", 2.0, 1.9, 2.1)])
    choice = only(recommend(summary))
    assert choice["choice"] == "ort-fp32" and choice["ties"] == []
    assert choice["excluded"] == {"ort-int8": "accuracy 0.9840 of FP32, below 0.99"}
    assert "faster but excluded: ort-int8 (accuracy 0.9840 of FP32, below 0.99)" in choice["reason"]


def test_overlapping_intervals_are_a_tie_ordered_by_file_size_then_memory():
    summary = pd.DataFrame([
        row("pytorch", 1.0),
        row("onnx-int8", 6.2, 5.5, 7.0, accuracy=0.995, model_bytes=70e6, rss=400e6),
        row("ort-int8", 6.0, 5.4, 6.6, accuracy=0.995, model_bytes=70e6, rss=300e6),
        row("onnx-int8-mixed", 5.8, 5.6, 6.0, accuracy=0.998, model_bytes=90e6),
        row("ort-fp32", 2.0, 1.9, 2.1),  # separated from the fastest: not a tie
    ])
    choice = only(recommend(summary))
    assert choice["choice"] == "ort-int8"  # same file size as onnx-int8, less memory
    assert choice["ties"] == ["onnx-int8", "onnx-int8-mixed"]
    assert choice["fastest"] == "onnx-int8"
    (line,) = recommendation_lines(recommend(summary))
    assert line.startswith("batch 1, sequence 128: **ort-int8**, 6.00× [5.40–6.60] over PyTorch FP32")
    assert "onnx-int8 is faster on its point estimate but within the interval" in line


def test_the_latency_objective_excludes_rows_over_it_and_names_the_largest_batch():
    summary = pd.DataFrame([
        row("pytorch", 1.0, p99=12.0, batch=1), row("ort-int8", 5.0, accuracy=0.995, p99=3.0, batch=1),
        row("pytorch", 1.0, p99=300.0, batch=32), row("ort-int8", 4.0, accuracy=0.995, p99=25.0, batch=32,
                                                      throughput=1500.0),
        row("pytorch", 1.0, p99=80.0, batch=8), row("ort-int8", 4.5, accuracy=0.995, p99=18.0, batch=8,
                                                    throughput=800.0),
    ])
    constraints = Constraints(max_p99_ms=20.0)
    recommendations = recommend(summary, constraints).set_index("batch_size")
    assert recommendations.loc[8, "choice"] == "ort-int8"
    assert recommendations.loc[32, "choice"] is None
    assert recommendations.loc[32, "reason"] == "no variant meets the latency objective of 20.0 ms"
    assert recommendations.loc[1, "excluded"] == {}  # pytorch's 12 ms is within 20 ms
    best = only(largest_batch(recommendations.reset_index(), constraints))
    assert (best["batch_size"], best["choice"], best["throughput_seq_per_s"]) == (8, "ort-int8", 800.0)


def test_cost_per_million_sequences_by_hand():
    # $2.40 an hour at 200 sequences/s: 720,000 sequences an hour, so a million cost 2.40 / 0.72 = 3.333...
    assert cost_per_million(200.0, 2.40) == pytest.approx(3.3333333)
    assert math.isnan(cost_per_million(200.0, None))
    summary = pd.DataFrame([
        row("pytorch", 1.0, hardware="cpu-a"), row("ort-int8", 5.0, accuracy=0.995, hardware="cpu-a", throughput=200),
        row("pytorch", 1.0, hardware="gpu-b"), row("ort-int8", 3.0, accuracy=0.995, hardware="gpu-b",
                                                   throughput=1000),
    ])
    recommendations = recommend(summary, prices={"cpu-a": 2.40, "gpu-b": 4.00})
    assert recommendations.set_index("hardware")["cost_per_million"].to_dict() == pytest.approx(
        {"cpu-a": 2.40 / 0.72, "gpu-b": 4.00 / 3.6})
    pair = only(cheapest(recommendations))
    assert (pair["hardware"], pair["choice"]) == ("gpu-b", "ort-int8")
    assert cheapest(recommend(summary, prices={"cpu-a": 2.40})).empty  # one priced machine: nothing to compare


def test_without_an_accuracy_stage_it_says_it_cannot_judge_instead_of_recommending_on_speed():
    summary = pd.DataFrame([row("pytorch", 1.0, accuracy=None), row("ort-int8", 6.0, accuracy=None),
                            row("pytorch", 1.0, accuracy=None, batch=32), row("ort-int8", 5.0, accuracy=None,
                                                                              batch=32)])
    recommendations = recommend(summary.drop(columns=["accuracy_relative"]).assign(accuracy_relative=math.nan))
    assert recommendations["choice"].isna().all()
    assert recommendation_lines(recommendations) == [
        "every shape: no recommendation: accuracy cannot be judged (no tokenizer, so no accuracy stage): no variant "
        "is recommended on speed alone"]


def test_variants_timed_in_the_same_processes_are_told_apart_side_by_side(tmp_path):
    """Overlapping speedup intervals (both speedups share the PyTorch blocks they divide) are no tie when every
    process ran one variant faster than the other; a ratio that swings around 1 from process to process is one.
    The summary goes through its CSV, as every consumer reads it."""
    common = dict(accuracy=0.995, model_bytes=70e6)
    summary = pd.DataFrame([
        {**row("pytorch", 1.0), "speedup_paired": True},
        # PyTorch moved from process to process; onnx-int8 ran 1.04-1.06x ort-int8's speed in every one of them.
        {**row("onnx-int8", 6.24, 5.7, 6.8, rss=400e6, **common), "speedup_paired": True,
         "process_speedups": "5.72 6.36 6.80 6.12"},
        {**row("ort-int8", 5.94, 5.5, 6.4, rss=300e6, **common), "speedup_paired": True,
         "process_speedups": "5.5 6.0 6.48 5.82"},
        # onnx-int8-mixed: as fast within a few percent, one process faster, another slower.
        {**row("onnx-int8-mixed", 6.15, 5.6, 6.7, **common), "speedup_paired": True,
         "process_speedups": "5.9 6.55 6.55 5.95"},
    ])
    path = tmp_path / "summary.csv"
    summary.to_csv(path, index=False)
    choice = only(recommend(pd.read_csv(path)))
    assert choice["choice"] == "onnx-int8" and choice["ties"] == ["onnx-int8-mixed"]
    assert bool(choice["ties_side_by_side"]) is True
    (line,) = recommendation_lines(recommend(pd.read_csv(path)))
    assert "tied with onnx-int8-mixed (timed side by side, the ratio's 95% interval reaches 1;" in line
    # Without the per-process speedups (results from before them), the same intervals overlap: a three-way tie,
    # and the lower peak memory picks ort-int8.
    before = only(recommend(pd.read_csv(path).drop(columns=["process_speedups"])))
    assert before["choice"] == "ort-int8" and sorted(before["ties"]) == ["onnx-int8", "onnx-int8-mixed"]
    assert bool(before["ties_side_by_side"]) is False


def test_side_by_side_is_the_paired_ratio_of_the_two_variants_blocks():
    """The ratio of two rows' per-process speedups, process by process, is the paired speedup of one variant's
    blocks over the other's: PyTorch's blocks cancel."""
    from inference_bench.measure.statistics import paired_block_speedup
    from inference_bench.report.aggregate import process_speedups
    from inference_bench.report.recommend import side_by_side

    base = [[20.0, 22.0, 19.0], [30.0, 24.0, 26.0], [21.0, 20.0, 23.0]]
    fast = [[3.0, 3.3, 2.9], [4.1, 3.5, 3.6], [3.2, 3.0, 3.3]]
    slow = [[3.4, 3.5, 3.1], [4.3, 3.8, 4.0], [3.3, 3.4, 3.6]]
    rows = [pd.Series({"speedup_paired": True, "process_speedups": process_speedups(base, blocks, None)})
            for blocks in (fast, slow)]
    direct, expected = side_by_side(*rows), paired_block_speedup(slow, fast)
    assert (direct.value, direct.low, direct.high) == pytest.approx((expected.value, expected.low, expected.high),
                                                                    rel=1e-4)
    # Not the same processes (another count), a single process, or a cell that is not a list of speedups:
    # nothing to pair (the intervals decide).
    for other in ("6.0 6.1", "6.0", "6.0 abc 6.1", "6.0 -1 6.1"):
        assert side_by_side(rows[0], pd.Series({"speedup_paired": True, "process_speedups": other})) is None
    assert side_by_side(rows[0], pd.Series({"speedup_paired": False, "process_speedups": rows[1]["process_speedups"]})) is None
    assert side_by_side(rows[0], rows[1]) is not None
    # Two comparisons' rows (the same count of processes, but not the same processes) are not paired either.
    ids = [pd.Series({**row.to_dict(), "comparison_id": name}) for row, name in zip(rows, ("c1", "c2"))]
    assert side_by_side(ids[0], ids[1]) is None
    assert side_by_side(ids[0], pd.Series({**rows[1].to_dict(), "comparison_id": "c1"})) is not None
