"""Was the host in its undisturbed state while a cycle was timed? A probe between cycles, and which cycles count.

On the 2-core cloud VMs this pipeline is measured on, the host switches between two states that no counter
inside the VM shows (no steal time, no other process, the same clock): in one, every engine that runs its two
threads in many short parallel steps is slower, and not by the same factor (a Zen 5 EPYC, batch 1, sequence 16,
an 8-minute pilot whose spells lasted 20-60 s: PyTorch FP32 eager +12%, PyTorch BF16 +24%, ONNX Runtime's INT8
+31%, ONNX Runtime FP32 +4%). So the speedups themselves move with it (BF16's over FP32: 3.20 in one state,
2.88-2.97 in the other), and a comparison's interval spans whatever mix of the two states its minutes met.

What sees it: a chain of small two-threaded matrix multiplies (a layer's worth at batch 1), the probe below,
runs about 10% slower in the disturbed state (its log correlated 0.89 with PyTorch FP32's over the pilot). What
does not: the same multiply on one thread pinned to either core, memory and cache reads; the state is in how
the two vCPUs run together, not in either one alone.

The comparison (measure.rounds) asks the baseline's process for the probe before every cycle and after the
last one; a cycle is disturbed when a probe around it is more than `max_host_slowdown` slower than the
comparison's undisturbed level (the 20th percentile of its probes: the host has more than two states, and a few
probes of a rare faster one must not make every other cycle disturbed). Every row records the share of its
comparison's cycles that were. With `undisturbed_only`, the paired speedups count only the undisturbed cycles
(what an undisturbed machine would measure): that narrowed the intervals where the spells lasted tens of
seconds, and widened them where the host flickered within seconds, faster than a probe per cycle can follow
(most cycles then read disturbed and are thrown away); so by default every cycle counts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The probe: a chain of this many (rows x width) @ (width x width) float32 multiplies, timed `REPEATS` times
#: (the median counts). About 8 ms a chain on a 2-core Zen 5, so about 40 ms a probe.
PROBE_MATMULS = 48
PROBE_ROWS = 16
PROBE_WIDTH = 768
PROBE_REPEATS = 5
#: A speedup needs this many processes with an undisturbed cycle, or it uses every cycle (and says so).
MIN_PROCESSES = 2
#: The undisturbed level: this percentile of a comparison's probes (in one default run, 4 of 40 probes at batch 1,
#: sequence 128 ran at 6.6-6.8 ms and the other 36 at 7.3-8.9: against the fastest few, every cycle read disturbed).
REFERENCE_PERCENTILE = 20


class HostProbe:
    """The probe, built once in a process that has torch (the baseline's worker) with its thread settings."""

    def __init__(self) -> None:
        import torch

        generator = torch.Generator().manual_seed(0)
        self._torch = torch
        self._rows = torch.randn(PROBE_ROWS, PROBE_WIDTH, generator=generator)
        self._weight = torch.randn(PROBE_WIDTH, PROBE_WIDTH, generator=generator) / PROBE_WIDTH**0.5

    def _chain(self) -> None:
        rows = self._rows
        for _ in range(PROBE_MATMULS):
            rows = self._torch.mm(rows, self._weight)

    def __call__(self) -> float:
        """Median milliseconds of one chain, after an untimed one."""
        with self._torch.inference_mode():
            self._chain()
            samples = []
            for _ in range(PROBE_REPEATS):
                started = time.perf_counter_ns()
                self._chain()
                samples.append((time.perf_counter_ns() - started) / 1e6)
        return statistics.median(samples)


def disturbed_cycles(probes_ms: Sequence[Sequence[float]], cycles: Sequence[int],
                     max_host_slowdown: float) -> list[list[bool]]:
    """[process][cycle]: True where a probe around the cycle (the one before it, the one after it) ran more than
    `max_host_slowdown` slower than the undisturbed level: the REFERENCE_PERCENTILE of them all. `probes_ms[p]` holds one probe more than the
    process's `cycles[p]`; a process without probes (or a slowdown of 0: the check is off) disturbs nothing."""
    if len(probes_ms) != len(cycles):
        raise ValueError(f"probes for {len(probes_ms)} processes, cycles for {len(cycles)}")
    every = [p for probes in probes_ms for p in probes]
    if not every or max_host_slowdown <= 0:
        return [[False] * count for count in cycles]
    limit = undisturbed_level(every) * (1.0 + max_host_slowdown)
    marked = []
    for probes, count in zip(probes_ms, cycles):
        if not probes:
            marked.append([False] * count)
            continue
        if len(probes) < count + 1:
            raise ValueError(f"{count} cycles need {count + 1} probes around them, got {len(probes)}")
        marked.append([max(probes[c], probes[c + 1]) > limit for c in range(count)])
    return marked


def undisturbed_level(probes_ms: Sequence[float]) -> float:
    return float(np.percentile(probes_ms, REFERENCE_PERCENTILE))


def kept_cycles(disturbed: Sequence[Sequence[bool]]) -> list[list[bool]] | None:
    """Which cycles a speedup counts: the undisturbed ones, where at least MIN_PROCESSES processes have one;
    None (count every cycle) where they do not: then the host was disturbed nearly throughout, and the row says
    how much."""
    kept = [[not flag for flag in process] for process in disturbed]
    if sum(any(process) for process in kept) < MIN_PROCESSES:
        return None
    return kept


def counted_cycles(host: dict[str, Any] | None, blocks: Sequence[Sequence[Any]]) -> list[list[bool]] | None:
    """[process][cycle]: the cycles a result's paired speedup counts, from its comparison's `host` record (None:
    every one), where that record says the undisturbed ones count and it matches the blocks' processes and cycles."""
    host = host or {}
    disturbed = host.get("disturbed_cycles")
    if host.get("counted") != "undisturbed cycles" or not disturbed or len(disturbed) != len(blocks) or \
            any(len(d) != len(b) for d, b in zip(disturbed, blocks)):
        return None
    return kept_cycles(disturbed)


def disturbed_share(disturbed: Sequence[Sequence[bool]]) -> float | None:
    flags = [flag for process in disturbed for flag in process]
    return sum(flags) / len(flags) if flags else None
