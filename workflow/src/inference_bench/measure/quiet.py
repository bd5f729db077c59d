"""Was the machine quiet while a job timed? Other processes' CPU time (steal included), the clock, a canary.

The process table cannot see a neighbour on the same host: a fixed small matrix multiply (the canary),
timed at the start of every job and by the calibration job, can. Its time against the calibration's says
whether the host slowed down between them; the CPU time other processes used during the timed calls
(from /proc/stat, less this process's own) says whether something here competed with the job.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

#: The canary: a float32 matrix multiply of this size, timed this many times (the median counts).
CANARY_SIZE = 256
CANARY_REPEATS = 30


def canary_ms(size: int = CANARY_SIZE, repeats: int = CANARY_REPEATS) -> float:
    """Median milliseconds of one fixed float32 matrix multiply (numpy's BLAS), after two warm-up calls."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    samples = []
    for index in range(repeats + 2):
        started = time.perf_counter_ns()
        np.dot(a, b)
        if index >= 2:
            samples.append((time.perf_counter_ns() - started) / 1e6)
    return float(np.median(samples))


def _proc_stat() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine since boot, or None where /proc/stat is unreadable."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / ticks, steal / ticks


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_mhz() -> float | None:
    """The mean current clock of the cores, where the kernel shows it (many VMs do not)."""
    readings = []
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            readings.append(int(path.read_text()) / 1000)
        except (OSError, ValueError):
            continue
    return float(np.mean(readings)) if readings else None


@dataclass(frozen=True)
class QuietReport:
    """What else ran while the timed calls did."""

    wall_s: float
    other_cpu_s: float | None  # CPU seconds other processes (and the hypervisor's steal) used
    steal_s: float | None
    other_cpu_share: float | None  # of the machine's cores over the wall time
    cpu_mhz: float | None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


class QuietCheck:
    """Measure, around a block, how much CPU time the rest of the machine used."""

    def __enter__(self) -> "QuietCheck":
        self._stat, self._own, self._wall = _proc_stat(), _own_cpu_s(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._wall
        stat, own = _proc_stat(), _own_cpu_s()
        if self._stat is None or stat is None:
            self.report = QuietReport(wall, None, None, None, cpu_mhz())
            return
        busy = stat[0] - self._stat[0]
        other = max(busy - (own - self._own), 0.0)
        cores = os.cpu_count() or 1
        self.report = QuietReport(wall, other, stat[1] - self._stat[1], other / (wall * cores) if wall else None,
                                  cpu_mhz())
