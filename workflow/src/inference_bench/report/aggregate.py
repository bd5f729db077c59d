"""Benchmark JSONs -> one summary table per (hardware tag, model), with speedups over PyTorch."""

from __future__ import annotations

import logging
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from inference_bench import layout
from inference_bench.artifacts import atomic_path, read_json, write_json_atomic, write_text_atomic
from inference_bench.errors import PipelineError
from inference_bench.models import ArchitectureFacts
from inference_bench.report.roofline import AboveBoundError, Bound, check_within_bound, merged_peaks, row_bound
from inference_bench.measure.host import counted_cycles
from inference_bench.measure.statistics import paired_block_speedup, speedup_interval, speedup_verdict
from inference_bench.report.tables import summary_markdown
from inference_bench.report.variance import variance_table
from inference_bench.variants import BASELINE, VARIANTS, precision_of, variant_order

log = logging.getLogger(__name__)

KEYS = ["hardware", "model", "variant", "batch_size", "sequence_length"]
SUMMARY_COLUMNS = [
    *KEYS,
    "status",
    "failure",
    "model_type",
    "device",
    "threads",
    "processes",
    "blocks",
    "reached_target",
    "target_interval",
    "stopped_by",
    "iterations",
    "mean_ms",
    "p50_ms",
    "p50_ci_low_ms",
    "p50_ci_high_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "throughput_seq_per_s",
    "speedup_vs_pytorch",
    "speedup_ci_low",
    "speedup_ci_high",
    "speedup_paired",
    "speedup_verdict",
    "process_speedups",
    "comparison_id",
    "host_disturbed_share",
    "host_counted",
    "flops_per_batch",
    "achieved_gflops",
    "peak_gflops",
    "share_of_peak",
    "bytes_per_batch",
    "arithmetic_intensity",
    "compute_bound_ms",
    "memory_bound_ms",
    "bound_ms",
    "bound_roof",
    "share_of_bound",
    "outlier",
    "peak_rss_bytes",
    "peak_gpu_memory_bytes",
    "model_bytes",
    "parity_max_abs_diff",
    "parity_min_token_cosine",
    "parity_mean_token_cosine",
    "fp32_matmuls",
    "accuracy_metric",
    "accuracy_relative",
    "accuracy_passed",
    "accuracy_gate",
    "sentence_cosine_mean",
    "sentence_cosine_min",
    "top10_overlap",
    "other_cpu_share",
    "retried_blocks",
    "noisy_blocks",
    "idle_workers_cpu_share",
    "canary_ms",
    "canary_spread",
    "canary_vs_calibration",
    "date",
]


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """A job's row; a failed job keeps its row, with its reason and no timing."""
    row = {key: record.get(key) for key in SUMMARY_COLUMNS}
    row["status"] = record.get("status", "ok")
    parity = record.get("parity") or {}
    row["parity_max_abs_diff"] = parity.get("max_abs_diff")
    row["parity_min_token_cosine"] = parity.get("min_token_cosine")
    row["parity_mean_token_cosine"] = parity.get("mean_token_cosine")
    quiet = record.get("quiet", {})
    row["other_cpu_share"] = quiet.get("other_cpu_share")
    row["retried_blocks"] = quiet.get("retried")
    row["noisy_blocks"] = quiet.get("noisy")
    row["idle_workers_cpu_share"] = quiet.get("idle_workers_cpu_share")
    row["target_interval"] = (record.get("design") or {}).get("target_interval")
    row["canary_ms"] = quiet.get("canary_ms")
    row["canary_spread"] = quiet.get("canary_spread")
    row["date"] = record.get("environment", {}).get("date")
    host = record.get("host") or {}
    row["host_disturbed_share"] = host.get("disturbed_share")
    row["host_counted"] = host.get("counted")
    row["comparison_id"] = (record.get("comparison") or {}).get("id")
    return row


def summarize(
    records: Iterable[dict[str, Any]],
    peak_gflops: dict[str, float] | None = None,
    calibration_canary_ms: float | None = None,
    memory_roofs: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per job, ordered by variant then shape, with the median-latency speedup over `pytorch`; each
    row's achieved GFLOP/s as a share of the peak of its precision (the best of the calibration's `peak_gflops`
    and of the model's own matrix multiplies its comparisons timed) and as a share of its roofline bound
    (inference_bench.report.roofline, with the calibration's `memory_roofs`): a row above its bound is kept
    out (keep_out_rows_above_bound), the others are summarized. Given the calibration's canary time, each job's canary against it (above 1: the host
    ran slower then). A variant much slower than PyTorch eager gets an `outlier` note of what its job saw."""
    records = list(records)
    frame = pd.DataFrame([summary_row(r) for r in records], columns=SUMMARY_COLUMNS)
    if frame.empty:
        return frame
    peaks = merged_peaks(*(r.get("shape_gemms") or [] for r in records), known=peak_gflops)
    frame["peak_gflops"] = frame["variant"].map(lambda v: peaks.get(precision_of(v) or "", float("nan")))
    frame["share_of_peak"] = frame["achieved_gflops"] / frame["peak_gflops"]
    rooflines = [row_roofline(record, peaks, memory_roofs or {}) for record in records]
    columns = pd.DataFrame([columns for columns, _ in rooflines])
    for column in columns:
        frame[column] = columns[column]
    frame["canary_vs_calibration"] = pd.to_numeric(frame["canary_ms"]) / (calibration_canary_ms or float("nan"))
    baselines = _baselines(records)
    speedups = pd.DataFrame([speedup_columns(record, baselines) for record in records])
    for column in speedups:
        frame[column] = speedups[column]
    frame["outlier"] = [outlier_note(record, baselines) for record in records]
    keep_out_rows_above_bound(frame, records, [bound for _, bound in rooflines])
    return sort_variants(frame)[SUMMARY_COLUMNS].reset_index(drop=True)


_NO_BOUND = {"bytes_per_batch": float("nan"), "arithmetic_intensity": float("nan"), "compute_bound_ms": float("nan"),
             "memory_bound_ms": float("nan"), "bound_ms": float("nan"), "bound_roof": None,
             "share_of_bound": float("nan")}


def row_roofline(record: dict[str, Any], peaks: dict[str, float], memory_roofs: dict[str, Any]
                 ) -> tuple[dict[str, Any], Bound | None]:
    """The row's roofline columns: bytes its pass moves, FLOPs per byte, its compute and memory times at the
    roofs, the larger (its bound), which roof that is, and the share of the bound the row reached (1.0: at
    the roof); and the bound itself. Rows without the model's shape (failed, or measured before it was
    recorded) have none."""
    architecture, precision = record.get("architecture"), precision_of(record.get("variant", ""))
    if record.get("status", "ok") != "ok" or not architecture or precision is None:
        return dict(_NO_BOUND), None
    facts = ArchitectureFacts(**architecture)
    width = (record.get("inputs") or {}).get("width") or record["sequence_length"]
    bound, bytes_ = row_bound(facts, precision, record["batch_size"], width, peaks, memory_roofs)
    if pd.isna(bound.ms):
        return {**_NO_BOUND, "bytes_per_batch": bytes_, "arithmetic_intensity": record["flops_per_batch"] / bytes_}, None
    return {"bytes_per_batch": bytes_, "arithmetic_intensity": record["flops_per_batch"] / bytes_,
            "compute_bound_ms": bound.compute_ms, "memory_bound_ms": bound.memory_ms, "bound_ms": bound.ms,
            "bound_roof": bound.roof, "share_of_bound": bound.share(record["p50_ms"])}, bound


#: Status of a row that ran faster than its roofline bound allows: its numbers are kept out of the tables and
#: charts (one of the row and the bound is wrong, and nothing says which), its reason stands in the row.
ABOVE_BOUND = "above_bound"
#: The columns a row above its bound no longer shows: every timing, and what was derived from it.
_TIMED_COLUMNS = [column for column in SUMMARY_COLUMNS
                  if (column.endswith("_ms") or column.startswith(("speedup_", "share_of_", "throughput"))
                  or column in ("achieved_gflops", "bound_roof")) and column != "speedup_paired"]


def keep_out_rows_above_bound(frame: pd.DataFrame, records: Sequence[dict[str, Any]],
                              bounds: Sequence[Bound | None]) -> list[str]:
    """Mark every row faster than its roofline bound allows (status `above_bound`, the reason as its failure,
    its timings blanked) and say so in one warning each; the rest of the summary stands. Returns the reasons.
    Other rows keep their speedups: a paired speedup is measured against the baseline's rounds, not its bound."""
    reasons = []
    for index, (record, bound) in enumerate(zip(records, bounds)):
        if bound is None:
            continue
        row = (f"{record['hardware']}/{record['model']}/{record['variant']} at batch {record['batch_size']}, "
               f"sequence {record['sequence_length']}")
        try:
            check_within_bound(row, record["p50_ms"], bound)
        except AboveBoundError as error:
            reason = f"kept out: {error}"
            frame.loc[index, "status"] = ABOVE_BOUND
            frame.loc[index, "failure"] = reason
            frame.loc[index, _TIMED_COLUMNS] = None
            log.warning("%s", reason)
            reasons.append(reason)
    return reasons


#: A variant this many times slower than PyTorch FP32 eager at the same shape is flagged with what its job saw.
OUTLIER_SLOWDOWN = 1.5


def outlier_note(record: dict[str, Any], baselines: dict[tuple, dict[str, Any]]) -> str | None:
    """For a variant more than OUTLIER_SLOWDOWN times slower than PyTorch eager at its shape: how much, and what
    the job saw (torch.compile's recompilations and graph breaks while timed; the quiet-machine check; the
    canary's spread across rounds), so a reader can tell the engine from the measurement."""
    baseline = baselines.get(_shape(record))
    if baseline is None or baseline is record or record.get("status", "ok") != "ok":
        return None
    slowdown = record["p50_ms"] / baseline["p50_ms"]
    if slowdown <= OUTLIER_SLOWDOWN:
        return None
    seen = []
    counters = record.get("compile_counters")
    if counters:
        # The counters span the warm-up and the timed calls (run.py), so the compile of the timed shape, which
        # the warm-up does once per round, counts here: more than one per round is a recompilation while timed.
        seen.append(f"torch.compile: {counters['recompilations']} compilations and {counters['graph_breaks']} "
                    f"graph breaks in warm-up and timed calls over {record.get('processes') or record.get('rounds') or 1} "
                    f"process(es), "
                    f"{counters['graphs']} graph(s)")
    quiet = record.get("quiet") or {}
    if quiet.get("other_cpu_share") is not None:
        seen.append(f"other processes used at most {quiet['other_cpu_share']:.0%} of the machine, "
                    f"{quiet.get('noisy') or 0} noisy block(s)")
    if quiet.get("canary_spread") is not None:
        seen.append(f"canary spread {quiet['canary_spread']:.2f}× across processes")
    return f"{slowdown:.1f}× slower than {BASELINE}" + (f" ({'; '.join(seen)})" if seen else "")


def _shape(record: dict[str, Any]) -> tuple:
    return tuple(record.get(key) for key in ("hardware", "model", "batch_size", "sequence_length"))


def _baselines(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    return {_shape(r): r for r in records if r.get("variant") == BASELINE and r.get("status", "ok") == "ok"}


def round_latencies(record: dict[str, Any]) -> list[list[float]]:
    """A result's latencies per round (a result from before rounds counts as one round)."""
    return record.get("round_latencies_ms") or [record["latencies_ms"]]


def block_medians(record: dict[str, Any]) -> list[list[float]] | None:
    """A result's block medians, [process][cycle] (None for a result from before blocks)."""
    blocks = record.get("block_latencies_ms")
    if not blocks:
        return None
    return [[float(np.median(block)) for block in process] for process in blocks]


def _aligned(baseline: list[list[Any]], variant: list[list[Any]]) -> bool:
    return len(baseline) == len(variant) and all(len(b) == len(v) for b, v in zip(baseline, variant))


def speedup_columns(record: dict[str, Any], baselines: dict[tuple, dict[str, Any]]) -> dict[str, Any]:
    """The speedup over PyTorch FP32 eager at the same shape, with its interval: paired when both were timed in
    the same comparison's rounds, else resampled independently (and said to be unpaired)."""
    empty = {"speedup_vs_pytorch": float("nan"), "speedup_ci_low": float("nan"), "speedup_ci_high": float("nan"),
             "speedup_paired": None, "speedup_verdict": None, "process_speedups": None}
    baseline = baselines.get(_shape(record))
    if baseline is None or record.get("status", "ok") != "ok":
        return empty
    if baseline is record:
        return {"speedup_vs_pytorch": 1.0, "speedup_ci_low": 1.0, "speedup_ci_high": 1.0, "speedup_paired": True,
                "speedup_verdict": "baseline", "process_speedups": None}
    base_rounds, rounds = round_latencies(baseline), round_latencies(record)
    same = (baseline.get("comparison") or {}).get("id")
    together = same is not None and same == (record.get("comparison") or {}).get("id")
    base_blocks, blocks = block_medians(baseline), block_medians(record)
    if together and base_blocks is not None and blocks is not None and _aligned(base_blocks, blocks):
        # Timed side by side, block against block of the same cycle, in as many processes (the cycles the host
        # disturbed left out where the comparison counted the undisturbed ones only: measure.host).
        kept = counted_cycles(baseline.get("host"), base_blocks)
        paired, estimate = True, paired_block_speedup(base_blocks, blocks, kept)
        per_process = process_speedups(base_blocks, blocks, kept)
    else:
        paired = together and len(base_rounds) == len(rounds)
        estimate, per_process = speedup_interval(base_rounds, rounds, paired=paired), None
    return {"speedup_vs_pytorch": estimate.value, "speedup_ci_low": estimate.low, "speedup_ci_high": estimate.high,
            "speedup_paired": paired, "speedup_verdict": speedup_verdict(estimate.low, estimate.high),
            "process_speedups": per_process}


def process_speedups(base_blocks: list[list[float]], blocks: list[list[float]],
                     kept: list[list[bool]] | None) -> str:
    """Each process's own paired speedup (over the cycles the row's speedup counts; a process with none of them
    left out), space-separated: the replicates whose geometric mean is the row's speedup. Two variants of one
    comparison were timed in the same processes' cycles, so the ratio of their replicates, process by process, is
    their own paired comparison (report.recommend's ties)."""
    values = []
    for index, (base, mine) in enumerate(zip(base_blocks, blocks)):
        counted = None if kept is None else [kept[index]]
        if counted is not None and not any(counted[0]):
            continue
        values.append(paired_block_speedup([base], [mine], counted).value)
    return " ".join(f"{value:.6g}" for value in values)


def with_accuracy(summary: pd.DataFrame, accuracy: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Each row with its variant's task-level accuracy (inference_bench.accuracy.task), where it was measured."""
    for record in accuracy:
        rows = (summary["model"] == record["model"]) & (summary["variant"] == record["variant"])
        summary.loc[rows, "accuracy_metric"] = record["task_metric"]
        summary.loc[rows, "accuracy_relative"] = record["relative_to_fp32"]
        summary.loc[rows, "accuracy_passed"] = record["passed"]
        summary.loc[rows, "accuracy_gate"] = record["min_relative"]
        for key in ("sentence_cosine_mean", "sentence_cosine_min", "top10_overlap"):
            summary.loc[rows, key] = record[key]
    return summary


def sort_variants(frame: pd.DataFrame) -> pd.DataFrame:
    order = {name: index for index, name in enumerate(variant_order(frame["variant"]))}
    return frame.sort_values(
        ["hardware", "model", "variant", "sequence_length", "batch_size"],
        key=lambda column: column.map(order) if column.name == "variant" else column,
    )


def artifact_table(sidecar_paths: Sequence[str | Path]) -> pd.DataFrame:
    rows = []
    for path in sidecar_paths:
        sidecar = read_json(path)
        parity = sidecar.get("parity", {})
        rows.append(
            {
                "variant": Path(path).stem,
                "file_bytes": sidecar["file_bytes"],
                "sha256": sidecar["sha256"],
                "stage": sidecar.get("stage"),
                "parity_max_abs_diff": parity.get("max_abs_diff"),
                "parity_min_token_cosine": parity.get("min_token_cosine"),
                "fused_operators": json.dumps(sidecar.get("fused_operators", {}), sort_keys=True),
                "fp32_matmuls": fp32_matmuls_text(sidecar.get("mixed_precision")),
                "int8_search_passed": (sidecar.get("mixed_precision") or {}).get("passed"),
            }
        )
    return pd.DataFrame(rows)


def fp32_matmuls_text(search: dict[str, Any] | None) -> str | None:
    """`2 of 36: matmul_a, matmul_b`: the MatMuls an accuracy-aware INT8 kept in FP32 (None for other files)."""
    if not search:
        return None
    kept = search.get("kept_fp32") or []
    return f"{len(kept)} of {search.get('matmuls')}" + (f": {', '.join(kept)}" if kept else "")


def int8_search_notes(model: str, artifacts: pd.DataFrame) -> list[str]:
    """One line per accuracy-aware INT8 whose search found no mix that passes the gate."""
    if artifacts.empty or "int8_search_passed" not in artifacts:
        return []
    failed = artifacts[artifacts["int8_search_passed"] == False]  # noqa: E712 (None: not a searched file)
    return [f"No INT8 of {model} passes the accuracy gate: no mix of FP32 and INT8 MatMuls reached it on the "
            f"calibration texts ({row.variant} timed with {row.fp32_matmuls} MatMuls in FP32, the best tried)"
            for row in failed.itertuples()]


def aggregate(
    result_paths: Sequence[str | Path],
    sidecar_paths: Sequence[str | Path],
    summary_csv: str | Path,
    artifacts_csv: str | Path,
    summary_md: str | Path,
    environment_json: str | Path,
    calibration_json: str | Path | None = None,
    provenance: dict[str, Any] | None = None,
    accuracy_paths: Sequence[str | Path] = (),
    variance_csv: str | Path | None = None,
) -> pd.DataFrame:
    """Write the summary and its companions (the variance table, report.variance, where asked); `provenance` (the config sources and settings hash of the run,
    inference_bench.report.provenance) joins the environment, so a later README can tell a stale config."""
    records = [_record_of(path) for path in result_paths]
    calibration = read_json(calibration_json) if calibration_json else {}
    summary = with_accuracy(summarize(records, calibration.get("peak_gflops"), calibration.get("canary_ms"),
                                      calibration.get("memory_roofs")),
                            [read_json(path) for path in accuracy_paths])
    measured = [r for r in records if r.get("status", "ok") == "ok"]
    environment = dict((measured or records)[0]["environment"]) if records else {}
    environment["roofs"] = {
        "peak_gflops": merged_peaks(*(r.get("shape_gemms") or [] for r in records), known=calibration.get("peak_gflops")),
        "memory_roofs": calibration.get("memory_roofs"),
        "theoretical": calibration.get("theoretical"),
        "calibration_date": (calibration.get("environment") or {}).get("date"),
        "refused": calibration.get("refused_roofs") or {},
    }
    artifacts = artifact_table(sidecar_paths)
    searched = dict(zip(artifacts["variant"], artifacts["fp32_matmuls"])) if not artifacts.empty else {}
    summary["fp32_matmuls"] = summary["variant"].map(lambda v: searched.get(VARIANTS[v].artifact) if v in VARIANTS
                                                     else None)
    environment["notes"] = int8_search_notes(records[0]["model"], artifacts) if records else []
    _write_csv(summary, summary_csv)
    _write_csv(artifacts, artifacts_csv)
    if variance_csv is not None:
        targets = [r["design"]["target_interval"] for r in measured if r.get("design")]
        _write_csv(variance_table(measured, max(targets, default=0.03)), variance_csv)
    write_text_atomic(summary_md, summary_markdown(summary, environment))
    write_json_atomic(environment_json, {**environment, **(provenance or {}), "jobs": len(records)})
    return summary


class MisplacedResultError(PipelineError, ValueError):
    """A result file holds another job's result (copied or moved by hand)."""


def _record_of(path: str | Path) -> dict[str, Any]:
    """A job's record, refused when it describes another job than its path names."""
    record = read_json(path)
    key = layout.parse_result_path(path)
    expected = {"hardware": key.hardware, "model": key.model, "variant": key.variant,
                "batch_size": key.batch_size, "sequence_length": key.sequence_length}
    found = {name: record.get(name) for name in expected}
    if found != expected:
        wrong = ", ".join(f"{name} {found[name]!r}" for name in expected if found[name] != expected[name])
        raise MisplacedResultError(
            f"{path} holds the result of another job ({wrong}); delete it and rerun to measure this one"
        )
    return record


def _write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
