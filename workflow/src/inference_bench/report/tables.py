"""Summaries rendered for people: number formats, the results table, the machine line, Markdown."""

from __future__ import annotations

from typing import Any

import pandas as pd


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
    "p50_ms": "p50 ms [95% CI]",
    "p99_ms": "p99 ms",
    "throughput_seq_per_s": "seq/s",
    "speedup_vs_pytorch": "speedup vs pytorch [95% CI]",
    "achieved_gflops": "GFLOP/s",
    "share_of_bound": "% of bound (roof)",
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
    columns = dict(TABLE_COLUMNS)
    before_roofline = "share_of_bound" not in shown  # a summary from before the roofline: its share of peak
    if before_roofline:
        columns = {("share_of_peak" if key == "share_of_bound" else key): ("% of peak" if key == "share_of_bound"
                                                                            else heading)
                   for key, heading in columns.items()}
    table = shown[list(columns)].rename(columns=columns)
    if "p50_ci_low_ms" in shown:
        table["p50 ms [95% CI]"] = [latency_text(*values) for values in zip(shown["p50_ms"], shown["p50_ci_low_ms"],
                                                                    shown["p50_ci_high_ms"])]
    if "speedup_ci_low" in shown:
        table["speedup vs pytorch [95% CI]"] = [
            speedup_text(*values) for values in zip(shown["speedup_vs_pytorch"], shown["speedup_ci_low"],
                                                    shown["speedup_ci_high"], shown["speedup_verdict"],
                                                    shown["speedup_paired"])
        ]
    table["min cosine"] = shown["parity_min_token_cosine"].map(lambda v: "–" if pd.isna(v) else f"{v:.6f}")
    if before_roofline:
        table["% of peak"] = shown["share_of_peak"].map(lambda v: "–" if pd.isna(v) else f"{v:.0%}")
    else:
        table["% of bound (roof)"] = [bound_text(share, roof) for share, roof in
                                      zip(shown["share_of_bound"], shown["bound_roof"])]
    if "accuracy_relative" in shown and shown["accuracy_relative"].notna().any():
        table["accuracy vs FP32"] = [accuracy_text(*values) for values in
                                     zip(shown["accuracy_relative"], shown["accuracy_passed"],
                                         shown["sentence_cosine_min"], shown["accuracy_metric"])]
    if "status" in shown and (shown["status"] != "ok").any():
        table["min cosine"] = [
            f"**{_STATUS_WORDS.get(status, 'failed')}**: {reason}" if status != "ok" else cosine
            for status, reason, cosine in zip(shown["status"], shown["failure"], table["min cosine"])
        ]
    return table


#: How a row that was not measured as usual reads in the table (every other status: failed).
_STATUS_WORDS = {"above_bound": "kept out"}


def bound_text(share: float, roof: Any) -> str:
    """`62% (compute)`: the share of the row's roofline bound it reached, and the roof that sets the bound."""
    return "–" if pd.isna(share) else f"{share:.0%} ({roof})"


def latency_text(value: float, low: float, high: float) -> str:
    """`12.3 [12.1–12.6]`: the median of round medians and its 95% interval."""
    if pd.isna(value):
        return "–"
    return format_number(value) if pd.isna(low) else f"{format_number(value)} [{format_number(low)}–{format_number(high)}]"


#: Marks a speedup whose variant and baseline were not timed in the same rounds (see the table's note).
UNPAIRED_MARK = "†"


def speedup_text(value: float, low: float, high: float, verdict: Any, paired: Any) -> str:
    """`3.51× [3.40–3.63]`; a speedup whose interval holds 1.0 is no speedup: "no measurable difference"."""
    if pd.isna(value):
        return "–"
    if verdict == "baseline":
        return "1× (baseline)"
    mark = "" if paired is None or pd.isna(paired) or bool(paired) else UNPAIRED_MARK
    interval = "" if pd.isna(low) else f" [{low:.2f}–{high:.2f}]"
    if verdict == "no measurable difference":
        return f"no measurable difference{interval}{mark}"
    return f"{value:.2f}×{interval}{mark}"


def accuracy_text(relative: float, passed: Any, worst_cosine: float, metric: Any = None) -> str:
    """`0.9987 (worst sentence 0.9991)` for an encoder, `0.9950 (label agreement)` for a classifier; below the
    gate in bold."""
    if pd.isna(relative):
        return "–"
    detail = _METRIC_WORDS.get(metric) if isinstance(metric, str) else None
    text = f"{relative:.4f} ({detail or f'worst sentence {worst_cosine:.4f}'})"
    return text if passed is None or pd.isna(passed) or bool(passed) else f"**below gate**: {text}"


#: How a classifier's task metric reads in the table.
_METRIC_WORDS = {"label_agreement": "label agreement", "dataset_accuracy": "labelled-file accuracy / FP32's"}


def summary_markdown(summary: pd.DataFrame, environment: dict[str, Any]) -> str:
    return f"{machine_line(environment)}\n\n" + markdown_table(results_table(summary))


def machine_line(environment: dict[str, Any]) -> str:
    versions = environment.get("versions", {})
    device = environment.get("gpu_name") or environment.get("cpu_model", "unknown CPU")
    libs = ", ".join(
        f"{name} {versions[name]}" for name in ("torch", "onnxruntime", "transformers") if name in versions
    )
    fingerprint = environment.get("fingerprint") or {}
    if fingerprint and not environment.get("gpu_name"):
        flags = " ".join(fingerprint.get("cpu_flags") or []) or "no AVX2, AVX-512, VNNI, BF16 or AMX"
        device += (f" (family {fingerprint.get('cpu_family')} model {fingerprint.get('cpu_model_number')}, "
                   f"{fingerprint.get('logical_cpus')} cores, flags: {flags})")
    if fingerprint:
        device += f", machine {fingerprint.get('id')}"
    threads = environment.get("threads")
    commit = environment.get("git_commit")
    at = f" at commit {commit[:7]}" if commit else ""
    return f"{device}, threads: {threads}; measured {str(environment.get('date', ''))[:10]}{at}; {libs}"
