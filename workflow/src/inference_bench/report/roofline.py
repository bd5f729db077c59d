"""The roofline of one forward pass: the work, the bytes that must move, and which roof bounds the time.

A row can run no faster than the larger of its compute time (FLOPs over the matmul peak of its precision)
and its memory time (bytes over the sustained memory bandwidth). The bytes are a floor, counted from the
model's own shapes: every weight of the matrix multiplies read once in the variant's precision, the
embedding rows the batch looks up, and each matrix multiply's activations read and written once (attention
scores included) at the width the engine keeps them in between operators. A measured time below that
bound means the bound is wrong, never that the model is fast: `check_within_bound` refuses it.

The compute time counts each matrix multiply at the peak of the precision it runs in (the INT8 variants keep
the attention products in FP32); the memory time uses the cache's bandwidth when the bytes fit in the
last-level cache (a pass repeated over weights that fit stays in it) and memory's otherwise.

Derived from recorded numbers only (the model's shape, latency, the calibration's and the comparisons'
peaks), so it is reporting code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any, Literal

from inference_bench.measure.calibration import peak_by_precision
from inference_bench.errors import PipelineError
from inference_bench.measure.flops import model_gemms
from inference_bench.models import ArchitectureFacts

Roof = Literal["compute", "memory", "cache"]

#: Bytes per weight element in each precision's files.
WEIGHT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
#: Bytes per activation element between operators: dynamic INT8 quantizes each matmul's input on the fly
#: and hands FP32 to the next operator, so its activations move at FP32 width.
ACTIVATION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 4}
#: The precision of the products of two activations (attention), per variant precision: INT8 keeps them FP32.
ACTIVATION_PRECISION = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "fp32"}
_EMBEDDING_BYTES = 4  # the lookup tables stay FP32 in every variant but the FP16/BF16 ones; a floor either way


class AboveBoundError(PipelineError, ValueError):
    """A row ran faster than its roofline allows: the bound (its peak, bandwidth or byte count) is wrong."""


def matmul_weight_elements(facts: ArchitectureFacts) -> int:
    """Weights of every layer's matrix multiplies: Q, K, V, output (4 H²) and the feed-forward pair (2 H I)."""
    hidden, inner = facts.hidden_size, facts.intermediate_size
    return facts.num_layers * (4 * hidden * hidden + 2 * hidden * inner)


def activation_elements(facts: ArchitectureFacts, batch_size: int, sequence_length: int) -> int:
    """Activation elements each matrix multiply reads and writes once, per forward pass.

    Per layer, with T = batch x sequence tokens: the four projections read and write T x H each (8 T H); the
    feed-forward reads T x H and writes T x I, then reads T x I and writes T x H (2 T (H + I)); the scores
    read Q and K (2 T H) and write B x heads x S x S, softmax reads and writes them (2 B heads S²), and the
    weighted sum reads them with V (B heads S² + T H) and writes T x H."""
    hidden, inner, heads = facts.hidden_size, facts.intermediate_size, facts.num_heads
    tokens = batch_size * sequence_length
    scores = batch_size * heads * sequence_length * sequence_length
    per_layer = 8 * tokens * hidden + 2 * tokens * (hidden + inner) + 2 * tokens * hidden + 4 * scores \
        + 2 * tokens * hidden
    return facts.num_layers * per_layer


def bytes_moved(facts: ArchitectureFacts, precision: str, batch_size: int, sequence_length: int) -> int:
    """The floor of bytes one forward pass moves through memory (see the module's docstring)."""
    if precision not in WEIGHT_BYTES:
        raise ValueError(f"no byte widths for precision {precision!r}; known: {', '.join(WEIGHT_BYTES)}")
    weights = matmul_weight_elements(facts) * WEIGHT_BYTES[precision]
    lookups = batch_size * sequence_length * facts.hidden_size * _EMBEDDING_BYTES
    activations = activation_elements(facts, batch_size, sequence_length) * ACTIVATION_BYTES[precision]
    return weights + lookups + activations


@dataclass(frozen=True)
class Bound:
    """The shortest time a row could take, and which roof sets it (`memory_roof`: which bandwidth, memory or
    cache, its memory time used)."""

    ms: float
    roof: Roof
    compute_ms: float
    memory_ms: float
    memory_roof: Roof = "memory"

    def share(self, measured_ms: float) -> float:
        """How close the row came to its bound: 1.0 is at the roof."""
        return self.ms / measured_ms if measured_ms > 0 else math.nan


def roofline_bound(flops: float, bytes_: float, peak_gflops: float, bandwidth_gbs: float,
                   memory_roof: Roof = "memory") -> Bound:
    """The larger of the compute time and the memory time (a roof whose figure is unknown, NaN, is left out)."""
    compute_ms = flops / (peak_gflops * 1e9) * 1e3 if peak_gflops > 0 else math.nan
    return larger_roof(compute_ms, _memory_ms(bytes_, bandwidth_gbs), memory_roof)


def _memory_ms(bytes_: float, bandwidth_gbs: float) -> float:
    return bytes_ / (bandwidth_gbs * 1e9) * 1e3 if bandwidth_gbs > 0 else math.nan


def larger_roof(compute_ms: float, memory_ms: float, memory_roof: Roof = "memory") -> Bound:
    known = {roof: ms for roof, ms in (("compute", compute_ms), (memory_roof, memory_ms)) if not math.isnan(ms)}
    if not known:
        return Bound(math.nan, "compute", compute_ms, memory_ms, memory_roof)
    roof = max(known, key=known.get)
    return Bound(known[roof], roof, compute_ms, memory_ms, memory_roof)  # type: ignore[arg-type]


def compute_ms(facts: ArchitectureFacts, precision: str, batch_size: int, sequence_length: int,
               peaks: Mapping[str, float]) -> float:
    """Each matrix multiply of the pass at the peak of the precision it runs in: the weight products in the
    variant's, the attention products in ACTIVATION_PRECISION's. NaN when a peak is missing."""
    total = 0.0
    for gemm in model_gemms(facts, batch_size, sequence_length):
        runs_in = precision if gemm.weight else ACTIVATION_PRECISION.get(precision, precision)
        peak = peaks.get(runs_in, math.nan)
        if not peak > 0:
            return math.nan
        total += gemm.flops * gemm.count / (peak * 1e9) * 1e3
    return total


def bandwidth_for(bytes_: float, memory_roofs: Mapping[str, Any]) -> tuple[Roof, float]:
    """The cache's roof when the bytes fit in the last-level cache (and it was measured), else memory's."""
    llc, cache = memory_roofs.get("last_level_cache_bytes"), memory_roofs.get("cache")
    if llc and cache and bytes_ <= llc:
        return "cache", float(cache["roof_gbs"])
    memory = memory_roofs.get("memory")
    return "memory", float(memory["roof_gbs"]) if memory else math.nan


def row_bound(facts: ArchitectureFacts, precision: str, batch_size: int, sequence_length: int,
              peaks: Mapping[str, float], memory_roofs: Mapping[str, Any]) -> tuple[Bound, int]:
    """A summary row's bound, and the bytes its pass moves."""
    bytes_ = bytes_moved(facts, precision, batch_size, sequence_length)
    level, bandwidth = bandwidth_for(bytes_, memory_roofs)
    return larger_roof(compute_ms(facts, precision, batch_size, sequence_length, peaks),
                       _memory_ms(bytes_, bandwidth), level), bytes_


def merged_peaks(*measurements: Iterable[Mapping[str, Any]], known: Mapping[str, float] | None = None
                 ) -> dict[str, float]:
    """The best GFLOP/s per precision over every measured matrix multiply (and the peaks already `known`)."""
    peaks = dict(known or {})
    for precision, best in peak_by_precision(chain.from_iterable(measurements)).items():
        peaks[precision] = max(peaks.get(precision, 0.0), best)
    return peaks


def check_within_bound(row: str, measured_ms: float, bound: Bound, tolerance: float = 0.02) -> None:
    """Refuse a row that beat its bound by more than `tolerance` (timer noise), naming it and the figures."""
    if not math.isnan(bound.ms) and measured_ms < bound.ms * (1 - tolerance):
        raise AboveBoundError(
            f"{row} ran in {measured_ms:.3g} ms, {bound.share(measured_ms):.0%} of its roofline bound of "
            f"{bound.ms:.3g} ms ({bound.roof} roof; compute {bound.compute_ms:.3g} ms, {bound.memory_roof} "
            f"{bound.memory_ms:.3g} ms): no engine runs faster than its roofline, so a roof of the calibration, this "
            f"shape's byte or FLOP count, or the timing is wrong"
        )
