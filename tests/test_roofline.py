"""The roofline's counts on a tiny model against hand-computed values, and a row above its bound refused."""

from __future__ import annotations

import math

import pytest

from inference_bench.models import ArchitectureFacts
from inference_bench.roofline import (
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
                                              r"\(memory roof; compute 20 ms, memory 50 ms\): the bound is wrong"):
        check_within_bound("ort-int8 b1 s16", 40.0, bound)
