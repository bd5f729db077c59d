"""Run one benchmark job and return its record (the JSON a job writes)."""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from inference_bench import ONNX_VARIANTS, TORCH_VARIANTS, VARIANTS
from inference_bench.benchmark.timing import TimingSettings, latency_statistics, time_calls
from inference_bench.environment import describe_environment
from inference_bench.flops import encoder_flops
from inference_bench.reference import load_reference
from inference_bench.parity import Tolerance, compare_hidden_states

log = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]


class HardwareMismatchError(RuntimeError):
    """The hardware tag asks for a device this machine does not have; nothing is measured."""


class BenchmarkFailure(RuntimeError):
    """A job that ran but has no trustworthy number: the summary marks its row with this reason."""


class OutOfMemoryError(BenchmarkFailure):
    """The batch does not fit in this machine's (or this job's) memory."""


class DriftError(BenchmarkFailure):
    """The variant's outputs on this execution provider diverge from PyTorch FP32 (or hold NaN/Inf)."""


_OOM_SIGNS = ("out of memory", "failed to allocate", "can't allocate memory", "bad_alloc", "cannot allocate memory")


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or any(sign in str(error).lower() for sign in _OOM_SIGNS)


@dataclass(frozen=True)
class HardwareTag:
    name: str
    device: Device = "cpu"
    gpu_name_contains: str | None = None
    description: str = ""

    @property
    def providers(self) -> list[str]:
        if self.device == "cuda":
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class BenchmarkJob:
    hardware: HardwareTag
    model: str
    variant: str
    batch_size: int
    sequence_length: int
    model_dir: str
    reference_path: str
    onnx_path: str | None = None
    timing: TimingSettings = field(default_factory=TimingSettings)
    threads: int = 0
    seed: int = 0
    attn_implementation: str | None = "sdpa"  # PyTorch variants only
    tolerance: Tolerance | None = None  # parity gate on the execution provider being timed
    memory_limit_mb: int = 0  # address-space cap for this job; 0: none

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.variant in ONNX_VARIANTS and not self.onnx_path:
            raise ValueError(f"variant {self.variant!r} needs an ONNX file")
        if self.batch_size < 1 or self.sequence_length < 1:
            raise ValueError("batch size and sequence length must be >= 1")


def resolve_threads(requested: int) -> int:
    """0 means every core this process may run on."""
    return requested if requested > 0 else len(os.sched_getaffinity(0))


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


def make_runner(job: BenchmarkJob, threads: int):
    from inference_bench.benchmark.runners import OrtRunner, TorchRunner

    if job.variant in TORCH_VARIANTS:
        return TorchRunner(
            job.model_dir,
            device=job.hardware.device,
            threads=threads,
            attn_implementation=job.attn_implementation or "sdpa",
            dtype={"pytorch-fp16": "fp16", "pytorch-bf16": "bf16"}.get(job.variant, "fp32"),
            compile_model=job.variant == "pytorch-compile",
        )
    return OrtRunner(job.onnx_path, providers=job.hardware.providers, threads=threads)


def run_benchmark(job: BenchmarkJob, config_for_hash: Any = None) -> dict[str, Any]:
    """Measure one job. Raises OutOfMemoryError when the batch does not fit and DriftError when the outputs
    fail the parity gate, both naming the job, so that no fast number stands for a wrong answer."""
    check_hardware(job.hardware)
    if job.memory_limit_mb:
        limit = job.memory_limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        return _measure(job, config_for_hash)
    except BenchmarkFailure:
        raise
    except Exception as error:
        if not _is_out_of_memory(error):
            raise
        raise OutOfMemoryError(
            f"out of memory at batch {job.batch_size}, sequence {job.sequence_length} ({job.variant} on "
            f"{job.hardware.name}): {str(error).strip().splitlines()[0][:200]}. Lower benchmark.batch_sizes "
            f"or run this batch on a machine with more memory."
        ) from error


def _measure(job: BenchmarkJob, config_for_hash: Any) -> dict[str, Any]:
    from inference_bench.inputs import timing_inputs
    from inference_bench.models import ArchitectureFacts

    threads = resolve_threads(job.threads)
    label = f"{job.hardware.name}/{job.model}/{job.variant} b{job.batch_size} s{job.sequence_length}"
    facts = ArchitectureFacts.from_model_dir(job.model_dir)
    runner = make_runner(job, threads)

    reference_feeds, reference = load_reference(job.reference_path)
    parity = compare_hidden_states(reference, runner.outputs(reference_feeds), reference_feeds["attention_mask"])
    if job.tolerance is not None:
        problems = parity.violations(job.tolerance)
        if problems:
            raise DriftError(f"{job.variant} on {job.hardware.name} diverges from PyTorch FP32: {'; '.join(problems)}")

    feeds = timing_inputs(facts, list(reference_feeds), job.batch_size, job.sequence_length, job.seed)
    log.info("%s: %d warm-up, then >= %d iterations and >= %.1f s", label, job.timing.warmup_iterations,
             job.timing.min_iterations, job.timing.min_duration_s)
    latencies_ms = time_calls(runner.timed_call(feeds), job.timing, label=label)
    stats = latency_statistics(latencies_ms, job.batch_size)
    flops = encoder_flops(facts, job.batch_size, job.sequence_length)
    log.info("%s: median %.2f ms, %.1f seq/s over %d iterations", label, stats["p50_ms"],
             stats["throughput_seq_per_s"], stats["iterations"])

    return {
        "status": "ok",
        "hardware": job.hardware.name,
        "hardware_description": job.hardware.description,
        "device": job.hardware.device,
        "model": job.model,
        "model_type": facts.model_type,
        "variant": job.variant,
        "batch_size": job.batch_size,
        "sequence_length": job.sequence_length,
        "threads": threads,
        "timing_settings": asdict(job.timing),
        **stats,
        "flops_per_batch": flops,
        "achieved_gflops": flops / (stats["p50_ms"] / 1000.0) / 1e9,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_gpu_memory_bytes": runner.peak_device_memory_bytes(),
        "model_bytes": int(runner.model_bytes),
        "parity": parity.as_dict(),
        "latencies_ms": latencies_ms,
        "environment": describe_environment(device=job.hardware.device, threads=threads, config=config_for_hash),
    }


def failure_record(job: BenchmarkJob, failure: BenchmarkFailure, config_for_hash: Any = None) -> dict[str, Any]:
    """What a failed job leaves: which job, why, and on what; no timing."""
    return {
        "status": "failed",
        "failure": str(failure),
        "failure_kind": type(failure).__name__,
        "hardware": job.hardware.name,
        "device": job.hardware.device,
        "model": job.model,
        "variant": job.variant,
        "batch_size": job.batch_size,
        "sequence_length": job.sequence_length,
        "environment": describe_environment(device=job.hardware.device, config=config_for_hash),
    }


def failure_marker_path(result_path: str | Path) -> Path:
    """results/{tag}/{model}/bench/{variant}/b{B}_s{S}.json -> .../failed/{variant}/b{B}_s{S}.json: a file
    Snakemake does not own, so it survives the failed job and tells the next run's summary why."""
    result = Path(result_path)
    return result.parent.parent.parent / "failed" / result.parent.name / result.name
