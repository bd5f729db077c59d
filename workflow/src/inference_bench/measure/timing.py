"""The one clock every engine is timed with."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimingSettings:
    """Warm-up calls, then timed calls until both `min_iterations` and `min_duration_s` are reached
    (or `max_duration_s` has passed, so one slow configuration cannot hold the pipeline forever)."""

    warmup_iterations: int = 5
    min_iterations: int = 20
    min_duration_s: float = 2.0
    max_duration_s: float = 120.0
    progress_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if self.warmup_iterations < 0:
            raise ValueError(f"warmup_iterations must be >= 0, got {self.warmup_iterations}")
        if self.min_iterations < 1:
            raise ValueError(f"min_iterations must be >= 1, got {self.min_iterations}")
        if self.min_duration_s < 0 or self.max_duration_s <= 0:
            raise ValueError("min_duration_s must be >= 0 and max_duration_s > 0")


#: The config keys (benchmark.<key>) that set a job's TimingSettings; progress_interval_s is not one.
TIMING_CONFIG_KEYS = ("warmup_iterations", "min_iterations", "min_duration_s", "max_duration_s")


def warm_up(call: Callable[[], None], settings: TimingSettings) -> list[float]:
    """The untimed calls before `time_calls`: kept apart so that what they set off (torch.compile's compiler
    processes, allocator growth) happens before the quiet-machine check starts watching. Returns how long each
    took in milliseconds (the last says roughly what a call costs, for sizing blocks)."""
    took_ms = []
    for _ in range(settings.warmup_iterations):
        before = time.perf_counter_ns()
        call()
        took_ms.append((time.perf_counter_ns() - before) / 1e6)
    return took_ms


def time_calls(call: Callable[[], None], settings: TimingSettings, label: str = "") -> list[float]:
    """Latency of each timed call in milliseconds, after `warm_up`. `call` must return only when its work is
    done (a CUDA runner synchronizes inside it), so the host clock measures the model and nothing else."""
    latencies_ms: list[float] = []
    started = time.perf_counter()
    next_report = started + settings.progress_interval_s
    while True:
        before = time.perf_counter_ns()
        call()
        latencies_ms.append((time.perf_counter_ns() - before) / 1e6)
        now = time.perf_counter()
        elapsed = now - started
        if now >= next_report:
            log.info("%s: %d iterations, %.1f s, median %.2f ms", label, len(latencies_ms), elapsed,
                     float(np.median(latencies_ms)))
            next_report = now + settings.progress_interval_s
        enough = len(latencies_ms) >= settings.min_iterations and elapsed >= settings.min_duration_s
        if enough or elapsed >= settings.max_duration_s:
            return latencies_ms


def latency_statistics(latencies_ms: list[float], batch_size: int) -> dict[str, float]:
    samples = np.asarray(latencies_ms, dtype=np.float64)
    p50, p90, p95, p99 = np.percentile(samples, [50, 90, 95, 99])
    mean = float(samples.mean())
    return {
        "iterations": int(samples.size),
        "mean_ms": mean,
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "std_ms": float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
        "min_ms": float(samples.min()),
        "max_ms": float(samples.max()),
        "throughput_seq_per_s": batch_size * 1000.0 / mean,
    }
