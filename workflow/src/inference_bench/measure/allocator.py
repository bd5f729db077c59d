"""What a timed process does with the memory its engine frees (config: benchmark.allocator).

PyTorch eager on CPU has no caching allocator: every call allocates its activations from the C library and
frees them again, and glibc hands large blocks straight back to the kernel (munmap, heap trim). The next call
faults every page in again. Measured on a 2-core Zen 5 VM (2026-11-29), DistilBERT-base shape: 200,000 page
faults a call at batch 32, sequence 128 (about 800 MB touched anew), 86,000 for the BF16 model, none for ONNX
Runtime (its arena keeps what it allocated). On a virtual machine whose freed memory goes back to the host
(virtio-balloon free page reporting, as on the machines these defaults were measured on), how much a fault
costs depends on what the other processes did before: the latency then moves with the host.

- `retain` (the default): the process keeps what it frees (glibc `mallopt`: no mmap for large blocks, no trim),
  so a warm call faults no pages; every engine is timed at its steady state, as a serving process that has
  warmed up (or one linked with jemalloc or tcmalloc, which PyTorch's CPU tuning guide recommends) runs.
- `system`: the C library's defaults, page faults included.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger(__name__)

ALLOCATORS = ("retain", "system")

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: mallopt takes an int: the largest trim threshold it can be given (2 GiB of free heap top kept).
_NEVER_TRIM = 2**31 - 1


def apply_allocator(policy: str) -> dict[str, Any]:
    """Set this process's allocator policy; return what took effect, for the result's record."""
    if policy not in ALLOCATORS:
        raise ValueError(f"benchmark.allocator must be one of {ALLOCATORS}, got {policy!r}")
    if policy == "system":
        return {"policy": "system", "applied": True}
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:  # not glibc (musl, macOS): its own defaults stand, and the record says so
        log.warning("benchmark.allocator is retain but this C library has no mallopt: its defaults are timed")
        return {"policy": "retain", "applied": False}
    applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM))
    if not applied:
        log.warning("benchmark.allocator is retain but mallopt refused it: the C library's defaults are timed")
    return {"policy": "retain", "applied": applied}


def _libc() -> Any:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None
