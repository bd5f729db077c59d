"""The roofline's counts on a tiny model against hand-computed values, and a row above its bound refused."""

from __future__ import annotations

import math

import pytest

from inference_bench.models import ArchitectureFacts
from inference_bench.report.roofline import (
    AboveBoundError,
    activation_elements,
    bytes_moved,
    check_within_bound,
    matmul_weight_elements,
    roofline_bound,
)

# 2 layers, hidden 4, 2 heads, feed-forward 8; one sequence of 3 tokens.
TINY = ArchitectureFacts(model_type="bert", num_layers=2, num_heads=2, hidden_size=4, intermediate_size=8,
                         max_positions=16, vocab_size=100, pad_token_id=0)


def test_weights_and_activations_counted_by_hand():
    # Per layer: 4 * 4 * 4 (Q, K, V, output) + 2 * 4 * 8 (feed-forward) = 128 weights; two layers.
    assert matmul_weight_elements(TINY) == 256
    # Per layer, T = 3: projections 8*3*4 = 96, feed-forward 2*3*(4+8) = 72, Q and K read 2*3*4 = 24,
    # scores 1*2*3*3 = 18 written, read and written by softmax, read again: 4*18 = 72, V read and context
    # written 2*3*4 = 24: 288 per layer.
    assert activation_elements(TINY, 1, 3) == 576


def test_bytes_follow_the_precision_of_weights_and_activations():
    lookups = 1 * 3 * 4 * 4  # the embedding rows of 3 tokens, FP32
    assert bytes_moved(TINY, "fp32", 1, 3) == 256 * 4 + lookups + 576 * 4 == 3376
    assert bytes_moved(TINY, "fp16", 1, 3) == 256 * 2 + lookups + 576 * 2
    assert bytes_moved(TINY, "int8", 1, 3) == 256 * 1 + lookups + 576 * 4  # dynamic INT8 hands FP32 on
    with pytest.raises(ValueError, match="no byte widths for precision 'fp8'"):
        bytes_moved(TINY, "fp8", 1, 3)


def test_the_bound_is_the_larger_roof():
    # 2 GFLOP at 100 GFLOP/s: 20 ms; 1 GB at 20 GB/s: 50 ms -> memory-bound at 50 ms.
    bound = roofline_bound(2e9, 1e9, peak_gflops=100.0, bandwidth_gbs=20.0)
    assert (bound.roof, bound.ms, bound.compute_ms) == ("memory", pytest.approx(50.0), pytest.approx(20.0))
    assert bound.share(100.0) == pytest.approx(0.5)
    compute = roofline_bound(2e9, 1e8, peak_gflops=100.0, bandwidth_gbs=20.0)
    assert compute.roof == "compute" and compute.ms == pytest.approx(20.0)
    no_bandwidth = roofline_bound(2e9, 1e9, peak_gflops=100.0, bandwidth_gbs=math.nan)
    assert no_bandwidth.roof == "compute" and no_bandwidth.ms == pytest.approx(20.0)


def test_a_row_faster_than_its_bound_is_refused_naming_it():
    bound = roofline_bound(2e9, 1e9, peak_gflops=100.0, bandwidth_gbs=20.0)
    check_within_bound("ort-int8 b1 s16", 50.5, bound)  # at the roof: fine
    check_within_bound("ort-int8 b1 s16", 49.5, bound)  # within the timer's 2%
    with pytest.raises(AboveBoundError, match=r"ort-int8 b1 s16 ran in 40 ms, 125% of its roofline bound of 50 ms "
                                              r"\(memory roof; compute 20 ms, memory 50 ms\): no engine runs faster"):
        check_within_bound("ort-int8 b1 s16", 40.0, bound)


def test_compute_time_counts_each_product_at_the_peak_of_its_precision():
    from inference_bench.report.roofline import compute_ms

    # TINY at batch 1, sequence 3: per layer, weight products 2*3*(4*4*4 + 2*4*8) = 768 FLOPs, attention
    # products 2 heads * 2 * (3*2*3 + 3*3*2) = 144 FLOPs; two layers: 1536 and 288.
    peaks = {"fp32": 1e-6, "int8": 4e-6}  # GFLOP/s: 1,000 and 4,000 FLOP/s, so one FLOP takes 1 ms in FP32
    assert compute_ms(TINY, "fp32", 1, 3, peaks) == pytest.approx(1536 + 288)
    # INT8 runs the weight products at its peak and keeps the attention products in FP32.
    assert compute_ms(TINY, "int8", 1, 3, peaks) == pytest.approx(1536 / 4 + 288)
    assert math.isnan(compute_ms(TINY, "bf16", 1, 3, peaks))  # no BF16 peak measured: no compute roof


def test_the_cache_roof_bounds_a_pass_whose_bytes_fit_the_last_level_cache():
    from inference_bench.report.roofline import bandwidth_for, row_bound

    roofs = {"last_level_cache_bytes": 4000, "memory": {"roof_gbs": 10.0}, "cache": {"roof_gbs": 100.0}}
    assert bandwidth_for(3376, roofs) == ("cache", 100.0)
    assert bandwidth_for(4001, roofs) == ("memory", 10.0)
    assert bandwidth_for(10, {"memory": {"roof_gbs": 10.0}}) == ("memory", 10.0)  # no cache measured
    # 3376 bytes at 100 GB/s = 3.376e-5 ms; compute at 1 GFLOP/s: 1824 FLOPs = 1.824e-3 ms: compute-bound.
    bound, bytes_ = row_bound(TINY, "fp32", 1, 3, {"fp32": 1.0}, roofs)
    assert bytes_ == 3376 and bound.roof == "compute" and bound.memory_roof == "cache"
    assert bound.ms == pytest.approx(1.824e-3) and bound.memory_ms == pytest.approx(3.376e-5)
    slow_memory = {"memory": {"roof_gbs": 1e-3}}
    bound, _ = row_bound(TINY, "fp32", 1, 3, {"fp32": 1.0}, slow_memory)
    assert bound.roof == "memory" and bound.ms == pytest.approx(3376 / 1e6 * 1e3)


def test_peaks_merge_to_the_best_of_every_measured_product():
    from inference_bench.report.roofline import merged_peaks

    squares = {"fp32": 400.0, "int8": 1500.0}
    model_shapes = [{"precision": "fp32", "gflops": 450.0}, {"precision": "int8", "gflops": 1400.0},
                    {"precision": "bf16", "gflops": 900.0}]
    assert merged_peaks(model_shapes, [], known=squares) == {"fp32": 450.0, "int8": 1500.0, "bf16": 900.0}
