"""Benchmark JSONs -> one summary table per (hardware tag, model), with speedups over PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from inference_bench import VARIANTS
from inference_bench.artifacts import read_json, write_json_atomic
from inference_bench.calibration import VARIANT_PRECISION

KEYS = ["hardware", "model", "variant", "batch_size", "sequence_length"]
SUMMARY_COLUMNS = [
    *KEYS,
    "status",
    "failure",
    "model_type",
    "device",
    "threads",
    "iterations",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "std_ms",
    "min_ms",
    "max_ms",
    "throughput_seq_per_s",
    "speedup_vs_pytorch",
    "flops_per_batch",
    "achieved_gflops",
    "peak_gflops",
    "share_of_peak",
    "peak_rss_bytes",
    "peak_gpu_memory_bytes",
    "model_bytes",
    "parity_max_abs_diff",
    "parity_min_token_cosine",
    "parity_mean_token_cosine",
    "date",
]


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    """A job's row; a failed job keeps its row, with its reason and no timing."""
    row = {key: record.get(key) for key in SUMMARY_COLUMNS}
    row["status"] = record.get("status", "ok")
    parity = record.get("parity", {})
    row["parity_max_abs_diff"] = parity.get("max_abs_diff")
    row["parity_min_token_cosine"] = parity.get("min_token_cosine")
    row["parity_mean_token_cosine"] = parity.get("mean_token_cosine")
    row["date"] = record.get("environment", {}).get("date")
    return row


def summarize(records: Iterable[dict[str, Any]], peak_gflops: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per job, ordered by variant then shape, with the median-latency speedup over `pytorch` and,
    given the tag's matmul peaks, each row's achieved GFLOP/s as a share of the peak of its precision."""
    frame = pd.DataFrame([summary_row(r) for r in records], columns=SUMMARY_COLUMNS)
    if frame.empty:
        return frame
    peaks = peak_gflops or {}
    frame["peak_gflops"] = frame["variant"].map(lambda v: peaks.get(VARIANT_PRECISION.get(v, ""), float("nan")))
    frame["share_of_peak"] = frame["achieved_gflops"] / frame["peak_gflops"]
    ok = frame["status"] == "ok"
    baseline = frame.loc[(frame["variant"] == "pytorch") & ok, [*KEYS[:2], "batch_size", "sequence_length", "p50_ms"]]
    baseline = baseline.rename(columns={"p50_ms": "_baseline_p50_ms"})
    frame = frame.merge(baseline, on=["hardware", "model", "batch_size", "sequence_length"], how="left")
    frame["speedup_vs_pytorch"] = frame["_baseline_p50_ms"] / frame["p50_ms"]
    frame = frame.drop(columns="_baseline_p50_ms")
    return sort_variants(frame)[SUMMARY_COLUMNS].reset_index(drop=True)


def sort_variants(frame: pd.DataFrame) -> pd.DataFrame:
    order = {name: index for index, name in enumerate(VARIANTS)}
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
            }
        )
    return pd.DataFrame(rows)


def format_number(value: float) -> str:
    """Three significant figures without scientific notation for the sizes a table shows."""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or magnitude == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (pandas' to_markdown would add a dependency for this one use)."""

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "–"
        if isinstance(value, float):
            return format_number(value)
        return str(value)

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join(" --- " for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


#: Summary column -> its heading in the markdown tables (summary.md and the README).
TABLE_COLUMNS = {
    "variant": "variant",
    "batch_size": "batch",
    "sequence_length": "seq",
    "p50_ms": "p50 ms",
    "p90_ms": "p90 ms",
    "p99_ms": "p99 ms",
    "throughput_seq_per_s": "seq/s",
    "speedup_vs_pytorch": "speedup vs pytorch",
    "achieved_gflops": "GFLOP/s",
    "share_of_peak": "% of peak",
    "peak_mb": "peak MB",
    "model_mb": "model MB",
    "parity_min_token_cosine": "min cosine",
}


def results_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The table people read: peak memory (GPU where there is one, else process RSS) and model size in MB,
    shares as percentages, and a failed job's reason in place of its cosine."""
    gpu = summary["peak_gpu_memory_bytes"].notna().any()
    shown = summary.assign(
        peak_mb=(summary["peak_gpu_memory_bytes"] if gpu else summary["peak_rss_bytes"]) / 1e6,
        model_mb=summary["model_bytes"] / 1e6,
    )
    table = shown[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
    table["min cosine"] = shown["parity_min_token_cosine"].map(lambda v: f"{v:.6f}" if v == v else "–")
    table["% of peak"] = shown["share_of_peak"].map(lambda v: f"{v:.0%}" if v == v else "–")
    if "status" in shown and (shown["status"] != "ok").any():
        table["min cosine"] = [
            f"**failed**: {reason}" if status != "ok" else cosine
            for status, reason, cosine in zip(shown["status"], shown["failure"], table["min cosine"])
        ]
    return table


def summary_markdown(summary: pd.DataFrame, environment: dict[str, Any]) -> str:
    return f"{machine_line(environment)}\n\n" + markdown_table(results_table(summary))


def machine_line(environment: dict[str, Any]) -> str:
    versions = environment.get("versions", {})
    device = environment.get("gpu_name") or environment.get("cpu_model", "unknown CPU")
    libs = ", ".join(
        f"{name} {versions[name]}" for name in ("torch", "onnxruntime", "transformers") if name in versions
    )
    threads = environment.get("threads")
    return f"{device}, threads: {threads}; measured {str(environment.get('date', ''))[:10]}; {libs}"


def aggregate(
    result_paths: Sequence[str | Path],
    sidecar_paths: Sequence[str | Path],
    summary_csv: str | Path,
    artifacts_csv: str | Path,
    summary_md: str | Path,
    environment_json: str | Path,
    calibration_json: str | Path | None = None,
) -> pd.DataFrame:
    records = [read_json(path) for path in result_paths]
    peaks = read_json(calibration_json)["peak_gflops"] if calibration_json else None
    summary = summarize(records, peaks)
    measured = [r for r in records if r.get("status", "ok") == "ok"]
    environment = (measured or records)[0]["environment"] if records else {}
    _write_csv(summary, summary_csv)
    _write_csv(artifact_table(sidecar_paths), artifacts_csv)
    _write_text(summary_md, summary_markdown(summary, environment))
    write_json_atomic(environment_json, {**environment, "jobs": len(records)})
    return summary


def _write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    tmp = Path(f"{path}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _write_text(path: str | Path, text: str) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
