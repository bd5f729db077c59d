"""Hardware tags and the facts of this machine: device checks, threads, execution providers, CPU flags, GPU."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_bench.errors import PipelineError
from inference_bench.variants import Device, Variant

log = logging.getLogger(__name__)

#: The execution providers ONNX Runtime is asked for on each device, in priority order.
DEVICE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}

#: The instruction-set flags that decide matmul speed (AVX-512, VNNI, BF16, AMX).
MATMUL_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


class HardwareMismatchError(PipelineError, RuntimeError):
    """The hardware tag asks for a device this machine does not have; nothing is measured."""


@dataclass(frozen=True)
class HardwareTag:
    """A machine class a run measures (config `hardware_tags.<name>`), results under results/<name>/."""

    name: str
    device: Device = "cpu"
    gpu_name_contains: str | None = None
    description: str = ""

    @property
    def providers(self) -> list[str]:
        return list(DEVICE_PROVIDERS[self.device])


def resolve_threads(requested: int) -> int:
    """0 means every core this process may run on. More threads than that oversubscribe the cores: allowed
    (a cluster's nodes may be larger than this one), but said."""
    available = len(os.sched_getaffinity(0))
    if requested > available:
        log.warning("benchmark.threads is %d but this process may run on %d cores: the threads will share them",
                    requested, available)
    return requested if requested > 0 else available


def check_hardware(tag: HardwareTag) -> None:
    """Refuse to measure under a tag whose device is not here, so no result carries the wrong label."""
    if tag.device != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise HardwareMismatchError(
            f"hardware tag {tag.name!r} needs a CUDA GPU, but none is visible on this machine; "
            f"run with --config hardware=<a tag for this machine> (e.g. cpu)"
        )
    name = torch.cuda.get_device_name(0)
    if tag.gpu_name_contains and tag.gpu_name_contains.lower() not in name.lower():
        raise HardwareMismatchError(
            f"hardware tag {tag.name!r} expects a GPU named like {tag.gpu_name_contains!r}, this one is {name!r}"
        )


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of MATMUL_CPU_FLAGS this CPU has."""
    present = set((_cpuinfo_field("flags") or "").split())
    return [flag for flag in MATMUL_CPU_FLAGS if flag in present]


def runs_here(variant: Variant, device: str) -> str | None:
    """None when `variant` can run on `device` of this machine, else why not."""
    if device not in variant.devices:
        return f"{variant.name} runs on {' or '.join(variant.devices)} only, not {device}"
    if device == "cpu" and variant.needs_cpu_flags and not set(variant.needs_cpu_flags) & set(cpu_flags()):
        return f"{variant.name} needs a CPU with {' or '.join(variant.needs_cpu_flags)}; this one has none of them"
    return None


def _memory_gib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20)
    except (OSError, ValueError):
        pass
    return None


def machine_fingerprint(device: str) -> dict[str, Any]:
    """What makes one machine's numbers differ from another's under the same tag: the CPU's identity (a Zen 4
    and a Zen 5 EPYC share a model name, not a family), the flags that decide matmul speed, cores and
    memory, and for CUDA tags the GPUs and their driver; `id` is a short digest of the rest."""
    fields: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_vendor": _cpuinfo_field("vendor_id"),
        "cpu_family": _cpuinfo_field("cpu family"),
        "cpu_model_number": _cpuinfo_field("model\t") or _cpuinfo_field("model "),
        "cpu_stepping": _cpuinfo_field("stepping"),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
    }
    if device == "cuda":
        gpu = gpu_description()
        fields |= {key: gpu.get(key) for key in ("gpu_name", "gpu_count", "driver_version")}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return {"id": digest, **fields}


class MachineChangedError(HardwareMismatchError):
    """The tag's committed results were measured on another machine; they are not overwritten."""


def check_machine(tag: str, device: str, recorded_path: str | Path, replace: bool) -> dict[str, Any]:
    """Compare this machine with the one the tag's results were measured on (`results/<tag>/machine.json`).
    The first run of a tag records it; a different machine stops before any result is touched, unless
    `replace` (config `replace_machine: true`) says to measure over them, which records the new machine."""
    from inference_bench.artifacts import read_json, write_json_atomic

    here = machine_fingerprint(device)
    path = Path(recorded_path)
    if path.is_file() and not replace:
        recorded = read_json(path)
        if recorded.get("id") != here["id"]:
            differences = ", ".join(
                f"{key} {recorded.get(key)!r} there, {here[key]!r} here"
                for key in here if key != "id" and recorded.get(key) != here[key]
            )
            raise MachineChangedError(
                f"results/{tag}/ were measured on another machine ({differences}); nothing was measured or "
                f"overwritten. Measure this machine under a tag of its own (add one to hardware_tags and run "
                f"with --config hardware=<new tag>), or replace them with --config replace_machine=True"
            )
    if not path.is_file() or replace:
        write_json_atomic(path, here)
    return here


def gpu_description() -> dict[str, Any]:
    """GPU name, driver and CUDA version where torch sees a CUDA device; empty otherwise."""
    try:
        import torch
    except ImportError:  # an ONNX Runtime-only environment
        return {}
    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(0)
    info: dict[str, Any] = {
        "gpu_name": props.name,
        "gpu_memory_bytes": int(props.total_memory),
        "gpu_count": torch.cuda.device_count(),
        "cuda_version": torch.version.cuda,
    }
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        info["driver_version"] = driver.decode() if isinstance(driver, bytes) else driver
    except Exception:  # NVML is optional: the name and CUDA version above still hold
        pass
    return info
