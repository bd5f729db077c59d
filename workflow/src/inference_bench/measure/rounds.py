"""A comparison: every variant of one (tag, model, batch, sequence), timed in interleaved rounds.

In each round every variant runs in a fresh process (`inference_bench.measure.worker`), one after the
other, and the order reverses from one round to the next, so drift and neighbours hit every variant alike and
no variant always runs first or last. A variant that fails (its batch does not fit, its outputs drift) is
recorded as failed and left out of later rounds; the others go on. Only the first round checks parity: the
later ones time the same files on the same provider.

Before the first round, the comparison times the model's own matrix multiplies at its shape, per engine and
precision (inference_bench.measure.calibration.measure_gemms): the compute roof of this shape, measured in the same
job as the rows it bounds.

`variant_result` turns a comparison into one variant's result: the median of its round medians with a 95%
interval (inference_bench.measure.statistics), every round's latencies, what the quiet-machine check saw per round.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import inference_bench
from inference_bench import layout
from inference_bench.artifacts import read_json, write_json_atomic
from inference_bench.measure.run import BenchmarkFailure, BenchmarkJob, failure_record
from inference_bench.measure.timing import latency_statistics
from inference_bench.errors import PipelineError
from inference_bench.terminal import LOG_ONLY
from inference_bench.measure.statistics import median_interval

log = logging.getLogger(__name__)

#: The package's parent: a worker imports this checkout's code, whatever else is installed.
_SOURCE = Path(inference_bench.__file__).resolve().parents[1]


class WorkerError(PipelineError, RuntimeError):
    """A worker process crashed (a bug or a broken install, not a property of the variant)."""


@dataclass(frozen=True)
class Comparison:
    """The jobs of one (tag, model, batch, sequence), one per variant, and how many rounds to time them in."""

    jobs: tuple[BenchmarkJob, ...]
    rounds: int = 3
    config_for_hash: Any = None

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        shapes = {(j.hardware.name, j.model, j.batch_size, j.sequence_length) for j in self.jobs}
        if len(shapes) > 1:
            raise ValueError(f"one comparison times one tag, model and shape, got {sorted(shapes)}")
        names = [j.variant for j in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"a variant appears twice in {names}")


def round_orders(variants: list[str], rounds: int) -> list[list[str]]:
    """The configured order in even rounds, reversed in odd ones."""
    return [list(variants) if index % 2 == 0 else list(reversed(variants)) for index in range(rounds)]


def run_comparison(comparison: Comparison, log_path: str | None = None) -> dict[str, Any]:
    """Time every variant in interleaved rounds; return the comparison's record (what its rule writes)."""
    jobs = {job.variant: job for job in comparison.jobs}
    orders = round_orders(list(jobs), comparison.rounds)
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in jobs}
    failed: dict[str, dict[str, Any]] = {}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    clock, shape = time.monotonic(), _shape_of(comparison)
    gemms = shape_gemms(comparison.jobs[0])
    with tempfile.TemporaryDirectory(prefix="comparison-") as scratch:
        for index, order in enumerate(orders):
            for position, name in enumerate(order):
                if name in failed:
                    continue
                log.info("round %d/%d, %d/%d: %s", index + 1, len(orders), position + 1, len(order), name,
                         extra=LOG_ONLY)
                job = replace(jobs[name], check_parity=index == 0)
                record = _run_worker(job, comparison.config_for_hash, Path(scratch), index, log_path)
                if record.get("status", "ok") != "ok":
                    failed[name] = record
                    continue
                if index:
                    record.pop("environment", None)  # the first round's describes them all
                measured[name].append({**record, "round": index, "position": position})
            log.info("%s", progress_line(shape, index + 1, len(orders), time.monotonic() - clock))
    return {
        "comparison_id": uuid.uuid4().hex[:12],
        "started": started,
        "rounds": comparison.rounds,
        "orders": orders,
        "gemms": gemms,
        "variants": {name: ({"failed": failed[name]} if name in failed else {"rounds": measured[name]})
                     for name in jobs},
    }


def shape_gemms(job: BenchmarkJob) -> list[dict[str, Any]]:
    """GFLOP/s of the model's matrix multiplies at the job's shape, per engine and precision (an empty list,
    with a warning, where they cannot be timed: the summary then bounds the rows by the calibration's)."""
    from inference_bench.measure.calibration import measure_gemms
    from inference_bench.measure.flops import model_gemms
    from inference_bench.hardware import resolve_threads
    from inference_bench.models import ArchitectureFacts

    facts = ArchitectureFacts.from_model_dir(job.model_dir)
    log.info("timing the model's matrix multiplies at batch %d, sequence %d", job.batch_size,
             job.sequence_length, extra=LOG_ONLY)
    try:
        return measure_gemms(job.hardware.device, resolve_threads(job.threads),
                             model_gemms(facts, job.batch_size, job.sequence_length))
    except (MemoryError, RuntimeError) as error:
        log.warning("could not time the model's matrix multiplies at this shape (%s): the calibration's "
                    "square sizes bound its rows", error)
        return []


def _shape_of(comparison: Comparison) -> str:
    job = comparison.jobs[0]
    return f"{job.model} batch {job.batch_size}, sequence {job.sequence_length} ({len(comparison.jobs)} variants)"


def progress_line(shape: str, done: int, rounds: int, elapsed_s: float) -> str:
    """`<shape>: round 2 of 3 done, 1 min 10 s, about 35 s left` (the rounds so far, extrapolated)."""
    left = elapsed_s / done * (rounds - done) if done else float("nan")
    return f"{shape}: round {done} of {rounds} done, {_duration(elapsed_s)}, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def _run_worker(job: BenchmarkJob, config_for_hash: Any, scratch: Path, index: int,
                log_path: str | None) -> dict[str, Any]:
    spec, out = scratch / f"{job.variant}-{index}.job.json", scratch / f"{job.variant}-{index}.json"
    write_json_atomic(spec, {"job": asdict(job), "config_for_hash": config_for_hash})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_SOURCE), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "inference_bench.measure.worker", str(spec), str(out)]
    if log_path:
        command.append(str(log_path))
    finished = subprocess.run(command, env=env, check=False)
    if finished.returncode < 0:
        signal_name = signal.Signals(-finished.returncode).name
        why = " (the kernel's out-of-memory killer sends it)" if finished.returncode == -signal.SIGKILL else ""
        failure = BenchmarkFailure(f"{job.variant} at batch {job.batch_size}, sequence {job.sequence_length} was "
                                   f"killed by {signal_name}{why}")
        return {**failure_record(job, failure, config_for_hash=config_for_hash), "failure_kind": "WorkerKilled"}
    if finished.returncode != 0 or not out.exists():
        where = f"; its traceback is in {log_path}" if log_path else ""
        raise WorkerError(f"the worker timing {job.variant} (round {index + 1}) exited with code "
                          f"{finished.returncode}{where}")
    return read_json(out)


def variant_result(comparison: dict[str, Any], variant: str) -> dict[str, Any]:
    """One variant's result from its comparison: a failed record as it was, or its rounds summarized."""
    entry = comparison["variants"].get(variant)
    if entry is None:
        raise KeyError(f"variant {variant!r} was not timed in comparison {comparison.get('comparison_id')}")
    if "failed" in entry:
        return entry["failed"]
    rounds = entry["rounds"]
    first = rounds[0]
    per_round = [r["latencies_ms"] for r in rounds]
    latency = median_interval(per_round)
    pooled = latency_statistics([x for r in per_round for x in r], first["batch_size"])
    gpu_peaks = [r["peak_gpu_memory_bytes"] for r in rounds if r.get("peak_gpu_memory_bytes") is not None]
    kept = ("status", "hardware", "hardware_description", "device", "model", "model_type", "variant", "batch_size",
            "sequence_length", "threads", "timing_settings", "inputs", "flops_per_batch", "model_bytes", "parity",
            "architecture")
    return {
        **{key: first.get(key) for key in kept},
        **pooled,  # every iteration of every round: mean, percentiles, spread
        # The headline latency: the median of the round medians, and its interval.
        "p50_ms": latency.value,
        "p50_ci_low_ms": latency.low,
        "p50_ci_high_ms": latency.high,
        "rounds": len(rounds),
        "achieved_gflops": first["flops_per_batch"] / (latency.value / 1000.0) / 1e9,
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rounds),
        "peak_gpu_memory_bytes": max(gpu_peaks) if gpu_peaks else None,
        "round_latencies_ms": per_round,
        "round_details": [
            {"round": r["round"], "position": r["position"], "p50_ms": float(np.median(r["latencies_ms"])),
             "iterations": len(r["latencies_ms"]), "quiet": r["quiet"]}
            for r in rounds
        ],
        "quiet": _quiet_summary([r["quiet"] for r in rounds]),
        "comparison": {"id": comparison["comparison_id"], "started": comparison["started"],
                       "orders": comparison["orders"]},
        "shape_gemms": comparison.get("gemms") or [],
        "compile_counters": _summed_counters([r.get("compile_counters") for r in rounds]),
        "environment": first["environment"],
    }


def _summed_counters(per_round: list[dict[str, int] | None]) -> dict[str, int] | None:
    """torch.compile's counters during the timed calls, summed over the rounds (None for other engines)."""
    counted = [c for c in per_round if c is not None]
    if not counted:
        return None
    return {"recompilations": sum(c["recompilations"] for c in counted),
            "graph_breaks": sum(c["graph_breaks"] for c in counted),  # during the timed calls
            "graphs": max(c["graphs"] for c in counted)}  # graphs the compiled model was split into


def _quiet_summary(per_round: list[dict[str, Any]]) -> dict[str, Any]:
    shares = [q["other_cpu_share"] for q in per_round if q.get("other_cpu_share") is not None]
    canaries = [q["canary_ms"] for q in per_round if q.get("canary_ms") is not None]
    return {
        "other_cpu_share": max(shares) if shares else None,
        "retried": sum(bool(q.get("retried")) for q in per_round),  # rounds timed twice
        "noisy": sum(bool(q.get("noisy")) for q in per_round),  # rounds still over the threshold after it
        "canary_ms": float(np.median(canaries)) if canaries else None,
        "canary_spread": (max(canaries) / min(canaries)) if canaries else None,  # host drift across rounds
    }


def write_comparison(comparison: Comparison, out_path: str | Path, log_path: str | None = None) -> None:
    write_json_atomic(out_path, run_comparison(comparison, log_path))


class VariantFailedError(PipelineError, RuntimeError):
    """A variant of a comparison has no trustworthy number (see its record's reason)."""


def write_variant_result(comparison_path: str | Path, result_path: str | Path, variant: str,
                         on_failure: str = "fail") -> None:
    """Write one variant's result from its comparison. A failed variant, with `on_failure: record`, writes its
    failed record as the result; with `fail`, it leaves a marker beside the results (not an output, so
    Snakemake keeps it: the next run's summary shows the row as failed instead of dropping it) and raises."""
    record = variant_result(read_json(comparison_path), variant)
    marker = layout.failure_marker_path(result_path)
    if record.get("status", "ok") != "ok" and on_failure != "record":
        write_json_atomic(marker, record)
        raise VariantFailedError(
            f"{record['failure']}. Its row is marked failed ({marker}); once the cause is fixed, delete that "
            f"marker and run `snakemake --cores 1 --forcerun benchmark` (or delete {comparison_path}) to time "
            f"it again"
        )
    marker.unlink(missing_ok=True)
    write_json_atomic(result_path, record)
