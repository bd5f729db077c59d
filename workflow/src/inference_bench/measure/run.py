"""Run one benchmark job and return its record (the JSON a job writes)."""

from __future__ import annotations

import contextlib
import logging
import resource
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from inference_bench.measure.allocator import apply_allocator
from inference_bench.measure.quiet import QuietCheck, canary_ms
from inference_bench.measure.timing import TimingSettings, latency_statistics, time_calls, warm_up
from inference_bench.environment import describe_environment
from inference_bench.errors import PipelineError, first_line
from inference_bench.measure.flops import encoder_flops
from inference_bench.hardware import HardwareTag, VariantCannotRunError, check_hardware, resolve_threads, runs_here
from inference_bench.build.parity import Tolerance, compare_hidden_states
from inference_bench.build.reference import load_reference
from inference_bench.variants import variant as lookup_variant

if TYPE_CHECKING:
    from inference_bench.measure.runners import Runner

log = logging.getLogger(__name__)

class BenchmarkFailure(PipelineError, RuntimeError):
    """A job that ran but has no trustworthy number: the summary marks its row with this reason."""


class OutOfMemoryError(BenchmarkFailure):
    """The batch does not fit in this machine's (or this job's) memory."""


class DriftError(BenchmarkFailure):
    """The variant's outputs on this execution provider diverge from PyTorch FP32 (or hold NaN/Inf)."""


_OOM_SIGNS = ("out of memory", "failed to allocate", "can't allocate memory", "bad_alloc", "cannot allocate memory")


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or any(sign in str(error).lower() for sign in _OOM_SIGNS)


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
    max_other_cpu_share: float = 0.10  # of the machine, used by other processes while timing: above, time again once
    check_parity: bool = True  # the first round of a comparison checks parity; later rounds only time
    inputs: str = "random"  # random: seeded ids, no padding; text: corpus sentences (models with a tokenizer)
    text_padding: str = "max_length"  # text inputs padded to the sequence length, or to the batch's longest
    allocator: str = "retain"  # what the process does with freed memory (measure.allocator)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> BenchmarkJob:
        """The inverse of `dataclasses.asdict` (how a comparison hands a job to its worker process)."""
        tolerance = fields.get("tolerance")
        return cls(**{
            **fields,
            "hardware": HardwareTag(**fields["hardware"]),
            "timing": TimingSettings(**fields["timing"]),
            "tolerance": Tolerance(**tolerance) if tolerance is not None else None,
        })

    def __post_init__(self) -> None:
        if lookup_variant(self.variant).artifact and not self.onnx_path:
            raise ValueError(f"variant {self.variant!r} needs an ONNX file")
        if self.batch_size < 1 or self.sequence_length < 1:
            raise ValueError("batch size and sequence length must be >= 1")


def make_runner(job: BenchmarkJob, threads: int) -> Runner:
    return runner_for(job.variant, job.hardware, job.model_dir, job.onnx_path, threads,
                      job.attn_implementation or "sdpa")


def runner_for(variant_name: str, hardware: HardwareTag, model_dir: str, onnx_path: str | None, threads: int,
               attn_implementation: str = "sdpa") -> Runner:
    """The engine that runs `variant_name` on the tag's device (the benchmark's and the accuracy stage's)."""
    from inference_bench.measure.runners import OrtRunner, TorchRunner

    variant = lookup_variant(variant_name)
    unavailable = runs_here(variant, hardware.device)
    if unavailable:
        raise VariantCannotRunError(unavailable)
    if variant.engine == "torch":
        return TorchRunner(model_dir, variant, device=hardware.device, threads=threads,
                           attn_implementation=attn_implementation)
    return OrtRunner(onnx_path, providers=hardware.providers, threads=threads, cuda_graph=variant.cuda_graph)


def run_benchmark(job: BenchmarkJob, config_for_hash: Any = None) -> dict[str, Any]:
    """Measure one job in one block of `job.timing`'s calls. Raises OutOfMemoryError when the batch does not
    fit and DriftError when the outputs fail the parity gate, both naming the job, so that no fast number
    stands for a wrong answer. (A comparison keeps a TimedVariant per worker and times it in many blocks.)"""
    variant = TimedVariant(job, config_for_hash)
    block = variant.time_block(None)
    latencies_ms = block["latencies_ms"]
    stats = latency_statistics(latencies_ms, job.batch_size)
    log.info("%s: median %.2f ms, %.1f seq/s over %d iterations", variant.label, stats["p50_ms"],
             stats["throughput_seq_per_s"], stats["iterations"])
    return {**variant.describe(), **stats, **variant.closing(),
            "achieved_gflops": variant.flops / (stats["p50_ms"] / 1000.0) / 1e9,
            "latencies_ms": latencies_ms, "quiet": block["quiet"]}


@contextlib.contextmanager
def _address_space_cap(limit_mb: int) -> Iterator[None]:
    """Cap the soft address-space limit while measuring, and lift it again after: what follows a failed
    batch (writing the failure record, which imports metadata and formats the environment) must not fail
    for want of the memory the failed batch left fragmented."""
    if not limit_mb:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _failures_named(job: BenchmarkJob) -> Iterator[None]:
    """Inside the job's memory cap; a batch that does not fit (or a cap too small to load the engine) leaves
    as an OutOfMemoryError naming the job and what to change."""
    try:
        with _address_space_cap(job.memory_limit_mb):
            yield
    except BenchmarkFailure:
        raise
    except (ImportError, OSError) as error:
        if not job.memory_limit_mb:
            raise
        # Under an address-space cap, a shared library that cannot be mapped fails its import
        # ("failed to map segment from shared object"): the cap, not the batch, is too small.
        raise OutOfMemoryError(
            f"benchmark.memory_limit_mb ({job.memory_limit_mb} MiB) is too low for {job.variant} to load its "
            f"engine ({first_line(error)}); raise it (a job that imports torch needs a few GB of address space) "
            f"or set it to 0"
        ) from error
    except Exception as error:
        if not _is_out_of_memory(error):
            raise
        raise OutOfMemoryError(
            f"out of memory at batch {job.batch_size}, sequence {job.sequence_length} ({job.variant} on "
            f"{job.hardware.name}): {first_line(error)}. Lower benchmark.batch_sizes "
            f"or run this batch on a machine with more memory."
        ) from error


class TimedVariant:
    """One variant loaded in this process: the machine checked, parity checked (when the job asks), inputs
    made and warm-up calls done; then it times blocks of calls on request, as often as its comparison asks."""

    def __init__(self, job: BenchmarkJob, config_for_hash: Any = None) -> None:
        check_hardware(job.hardware)
        self.job, self.config_for_hash = job, config_for_hash
        self.label = f"{job.hardware.name}/{job.model}/{job.variant} b{job.batch_size} s{job.sequence_length}"
        with _failures_named(job):
            self._load()

    def _load(self) -> None:
        from inference_bench.inputs.batches import text_inputs, timing_inputs
        from inference_bench.models import ArchitectureFacts

        job = self.job
        self.allocator = apply_allocator(job.allocator)  # before the engine allocates anything
        self.threads = resolve_threads(job.threads)
        self.canary = canary_ms()  # before the model loads: the host's speed, comparable with the calibration's
        self.facts = ArchitectureFacts.from_model_dir(job.model_dir)
        self.runner = make_runner(job, self.threads)

        reference_feeds, reference = load_reference(job.reference_path)
        self.parity = None
        if job.check_parity:
            self.parity = compare_hidden_states(reference, self.runner.outputs(reference_feeds),
                                                reference_feeds["attention_mask"])
            problems = self.parity.violations(job.tolerance) if job.tolerance is not None else []
            if problems:
                raise DriftError(f"{job.variant} on {job.hardware.name} diverges from PyTorch FP32: "
                                 f"{'; '.join(problems)}")

        feeds, self.inputs = None, {"kind": "random", "padding": None}
        if job.inputs == "text":
            feeds = text_inputs(job.model_dir, list(reference_feeds), job.batch_size, job.sequence_length, job.seed,
                                job.text_padding)
            if feeds is None:
                log.warning("%s: benchmark.inputs is text but the model has no tokenizer: random ids", self.label)
            else:
                self.inputs = {"kind": "text", "padding": job.text_padding}
        if feeds is None:
            feeds = timing_inputs(self.facts, list(reference_feeds), job.batch_size, job.sequence_length, job.seed)
        width = next(iter(feeds.values())).shape[1]
        self.inputs |= {"width": int(width), "real_token_share": float(feeds["attention_mask"].mean())}
        self.flops = encoder_flops(self.facts, job.batch_size, width)  # the width computed, padding included
        self.timed_call = self.runner.timed_call(feeds)
        self._counted_before = self.runner.compile_counters()
        log.info("%s: %d warm-up calls", self.label, job.timing.warmup_iterations)
        # Outside any quiet check: a compile's g++ processes are not a neighbour.
        self.warm_up_ms = warm_up(self.timed_call, job.timing)

    def size_block(self, block_s: float) -> int:
        """Untimed calls right before a process's first block, and how many calls make a block of about
        `block_s` seconds: calls until block_s has passed and at least two, the count set by the median of all
        but the first. Two, because a fresh engine's first two calls are cold: ONNX Runtime plans its memory
        on the first call and allocates the plan on the second (measured at batch 32, sequence 128: a first
        block after one untimed call ran 1.5-1.8x slower than the next ones, after two it did not); and a
        first call's time would size the blocks wrong (ONNX Runtime's runs 3x slower at batch 1)."""
        took_ms = time_calls(self.timed_call, TimingSettings(warmup_iterations=0, min_iterations=2,
                                                             min_duration_s=block_s, max_duration_s=float("inf")))
        self.sizing_ms = took_ms
        return max(1, int(round(block_s * 1000.0 / max(float(np.median(took_ms[1:])), 1e-3))))

    def time_block(self, calls: int | None) -> dict[str, Any]:
        """`calls` timed calls (None: until the job's timing settings are met), with what the quiet-machine check
        saw; a block over the job's `max_other_cpu_share` is timed once more (the retry's numbers count)."""
        settings = self.job.timing if calls is None else TimingSettings(
            warmup_iterations=0, min_iterations=calls, min_duration_s=0.0, max_duration_s=float("inf"))
        with _failures_named(self.job):
            for attempt in (1, 2):
                with QuietCheck() as check:
                    latencies_ms = time_calls(self.timed_call, settings, label=self.label)
                share = check.report.other_cpu_share
                noisy = share is not None and share > self.job.max_other_cpu_share
                if not noisy or attempt == 2:
                    break
                # The comparison counts retried blocks and says so once; a block's retry is the log's business.
                log.info("%s: other processes used %.0f%% of the machine while timing; timing once more",
                         self.label, 100 * share)
        quiet = {**check.report.as_dict(), "canary_ms": self.canary, "retried": attempt == 2, "noisy": noisy}
        return {"latencies_ms": latencies_ms, "quiet": quiet}

    def describe(self) -> dict[str, Any]:
        """What every block of this variant shares: the job, the model, parity, the environment."""
        job = self.job
        return {
            "status": "ok",
            "hardware": job.hardware.name,
            "hardware_description": job.hardware.description,
            "device": job.hardware.device,
            "model": job.model,
            "model_type": self.facts.model_type,
            "variant": job.variant,
            "batch_size": job.batch_size,
            "sequence_length": job.sequence_length,
            "threads": self.threads,
            "timing_settings": asdict(job.timing),
            "inputs": self.inputs,
            "allocator": self.allocator,
            "architecture": asdict(self.facts),
            "flops_per_batch": self.flops,
            "model_bytes": int(self.runner.model_bytes),
            "parity": self.parity.as_dict() if self.parity is not None else None,
            "warm_up_ms": self.warm_up_ms,
            "canary_ms": self.canary,
            "environment": describe_environment(device=job.hardware.device, threads=self.threads,
                                                config=self.config_for_hash),
        }

    def closing(self) -> dict[str, Any]:
        """What is known once the blocks are done: peak memory, what the compiler did in warm-up and blocks."""
        before, after = self._counted_before, self.runner.compile_counters()
        return {
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "peak_gpu_memory_bytes": self.runner.peak_device_memory_bytes(),
            "compile_counters": None if before is None or after is None else {
                "recompilations": after["frames_compiled"] - before["frames_compiled"],
                "graph_breaks": after["graph_breaks"] - before["graph_breaks"],
                "graphs": after["unique_graphs"],
            },
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
