"""Hardware tags and the facts of this machine: device checks, threads, execution providers, CPU flags, GPU."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_bench.errors import PipelineError
from inference_bench.variants import VARIANTS, Device, Variant

log = logging.getLogger(__name__)

#: The execution providers ONNX Runtime is asked for on each device, in priority order.
DEVICE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}

#: `hardware: auto` (the default) measures this machine under a tag named after it (machine_tag), with the
#: settings of the `cpu` tag less the variants this machine cannot run.
AUTO = "auto"
AUTO_TEMPLATE = "cpu"
#: Where the CPU's identity and flags are read; the tests point it at a file of another CPU's to fake one.
CPUINFO_ENV = "INFERENCE_BENCH_CPUINFO"
_DEFAULT_CPUINFO = "/proc/cpuinfo"

#: The instruction-set flags that decide matmul speed (AVX-512, VNNI, BF16, AMX).
MATMUL_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


class HardwareMismatchError(PipelineError, RuntimeError):
    """The hardware tag asks for a device this machine does not have; nothing is measured."""


class VariantCannotRunError(HardwareMismatchError, ValueError):
    """A variant needs what this machine lacks (a CPU flag, a GPU)."""


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
        for line in Path(os.environ.get(CPUINFO_ENV, _DEFAULT_CPUINFO)).read_text().splitlines():
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
    if os.environ.get(CPUINFO_ENV):  # a faked CPU is another machine, whatever it claims to be
        fields["cpuinfo"] = os.environ[CPUINFO_ENV]
    if device == "cuda":
        gpu = gpu_description()
        fields |= {key: gpu.get(key) for key in ("gpu_name", "gpu_count", "driver_version")}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return {"id": digest, **fields}


_VENDORS = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}
_MODEL_NOISE = re.compile(r"\(r\)|\(tm\)|\bcpu\b|\bprocessor\b|\bwith\b.*$|@.*$|\d+-core")


def machine_tag(fingerprint: dict[str, Any] | None = None) -> str:
    """This machine's own tag: its CPU's name, family and model, core count and a digest of the rest of its
    fingerprint, e.g. `amd-epyc-f26m2-2c-659312`. Readable, and one machine's results never land under
    another's tag (two CPUs that share a name, family, model and core count still differ in the digest)."""
    fingerprint = fingerprint or machine_fingerprint("cpu")
    vendor_id = fingerprint.get("cpu_vendor") or platform.machine() or "cpu"
    vendor = _VENDORS.get(vendor_id, re.sub(r"[^a-z0-9]+", "", vendor_id.lower()) or "cpu")
    words = re.findall(r"[a-z0-9]+", _MODEL_NOISE.sub(" ", str(fingerprint.get("cpu_model") or "").lower()))
    name = "-".join(words)[:40].strip("-") or vendor
    if not name.startswith(vendor):
        name = f"{vendor}-{name}"
    family = (f"-f{fingerprint['cpu_family']}m{fingerprint.get('cpu_model_number')}"
              if fingerprint.get("cpu_family") else "")
    return f"{name}{family}-{fingerprint.get('logical_cpus')}c-{fingerprint['id'][:6]}"


_MACHINE_TAG = re.compile(r"-\d+c-[0-9a-f]{6}$")


def is_machine_tag(tag: str) -> bool:
    """Whether `tag` was named by machine_tag (an `auto` run's), not declared in hardware_tags."""
    return bool(_MACHINE_TAG.search(tag))


def tag_settings(config: dict[str, Any], tag: str) -> dict[str, Any] | None:
    """The config entry a tag's results were measured with: its own, or the `cpu` tag's for a machine's own
    tag (before the variants this machine cannot run were left out)."""
    tags = config["hardware_tags"]
    return tags.get(tag) or (tags.get(AUTO_TEMPLATE) if is_machine_tag(tag) else None)


def unrunnable_variants(variants: list[str], device: str) -> dict[str, str]:
    """Each of `variants` that this machine cannot run on `device`, with the reason."""
    return {name: why for name in variants if (why := runs_here(VARIANTS[name], device))}


@dataclass(frozen=True)
class PlannedHardware:
    """What a run measures: the tag its results land under, the tag's settings (variants this machine cannot
    run left out when the tag is `auto`), and what was left out, with why."""

    name: str
    settings: dict[str, Any]
    auto: bool = False
    left_out: dict[str, str] = field(default_factory=dict)

    def left_out_line(self) -> str | None:
        if not self.left_out:
            return None
        reasons = "; ".join(why for why in self.left_out.values())
        return f"Left out on this machine ({self.name}): {', '.join(self.left_out)} ({reasons})"


def plan_hardware(config: dict[str, Any]) -> PlannedHardware:
    """The tag a (validated) config measures. A declared tag is taken as it is, its variants checked before
    measuring (check_variants_run_here); `auto` is this machine's own tag with the `cpu` tag's variants that
    can run here."""
    chosen = config["hardware"]
    if chosen != AUTO:
        return PlannedHardware(chosen, dict(config["hardware_tags"][chosen]))
    template = config["hardware_tags"][AUTO_TEMPLATE]
    left_out = unrunnable_variants(template["variants"], template["device"])
    settings = {**template, "variants": [name for name in template["variants"] if name not in left_out]}
    if not settings["variants"]:
        raise VariantCannotRunError(f"no variant of hardware_tags.{AUTO_TEMPLATE} can run on this machine: "
                                    + "; ".join(left_out.values()))
    return PlannedHardware(machine_tag(), settings, auto=True, left_out=left_out)


class AutoTagOnClusterError(PipelineError, ValueError):
    """`hardware: auto` with a cluster executor: the tag would be named after the submitting machine, and each
    job's node would name its own."""


def check_tag_for_executor(planned: PlannedHardware, local_exec: bool) -> None:
    """Refuse `hardware: auto` where jobs run on other machines (a cluster executor): name a tag instead."""
    if planned.auto and not local_exec:
        raise AutoTagOnClusterError(
            f"hardware: {AUTO} measures the machine snakemake runs on, not a cluster's nodes: name a tag from "
            f"hardware_tags, e.g. --config hardware={AUTO_TEMPLATE}, with the resources its nodes are asked for"
        )


def check_variants_run_here(tag: str, variants: list[str], device: str) -> None:
    """Refuse a declared tag that lists a variant this machine cannot run, before any job."""
    cannot = unrunnable_variants(variants, device)
    if cannot:
        name = next(iter(cannot))
        raise VariantCannotRunError(
            f"hardware tag {tag!r} lists {name}, which cannot run here: {cannot[name]}. Remove it from "
            f"hardware_tags.{tag}.variants, or run with --config hardware=auto, which leaves out what this machine "
            f"cannot run"
        )


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
