"""The README's results section, rewritten between marker comments from the committed summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from inference_bench import layout
from inference_bench.aggregate import sort_variants
from inference_bench.artifacts import read_csv, read_json, write_text_atomic
from inference_bench.benchmark.quiet import CANARY_SIZE
from inference_bench.environment import measuring_code_hash
from inference_bench.errors import PipelineError
from inference_bench.tables import format_number, machine_line, markdown_table, results_table
from inference_bench.targets import Target, evaluate_targets
from inference_bench.variants import variant_names

START = "<!-- results:start (written by `snakemake --cores 1 readme`; edits inside are overwritten) -->"
END = "<!-- results:end -->"


class MarkerError(PipelineError, ValueError):
    """The README lacks the marker comments, or has them out of order."""


def results_section(
    summary_paths: Sequence[str | Path],
    models: Sequence[str],
    targets: Sequence[Target] = (),
    root: Path = Path("."),
) -> str:
    """A block per model: this run's `models` first, then any other model that has a summary. Charts are
    linked where they exist under `root` (the README's folder). A target of this run's models with no
    matching row says so; other models show only the targets they have rows for."""
    keyed = [(layout.parse_summary_path(p), Path(p)) for p in summary_paths]
    others = sorted({key.model for key, _ in keyed} - set(models))
    parts: list[str] = []
    for model in [*models, *others]:
        paths = sorted((key.hardware, path) for key, path in keyed if key.model == model)
        if not paths:
            continue
        parts.append(f"### {model}\n")
        for _, path in paths:
            parts.append(_tag_block(path))
            parts.append(_targets_block(path, targets, report_missing=model in models))
        parts.append(_artifacts_block(layout.beside_summary(paths[0][1], layout.ARTIFACT_TABLE)))
        charts = [
            chart for chart in layout.CHARTS
            if (chart != "hardware" or len(paths) > 1) and (root / layout.CHART.format(model=model, chart=chart)).exists()
        ]
        if charts:
            parts.append(" ".join(f"![{c}]({layout.CHART.format(model=model, chart=c)})" for c in charts) + "\n")
    return "\n".join(parts)


def _artifacts_block(artifacts_csv: Path) -> str:
    """Each ONNX file, timed on this tag or not: size, fused operators, parity (at build time, on the CPU)."""
    if not artifacts_csv.exists():
        return ""
    artifacts = read_csv(artifacts_csv)
    table = pd.DataFrame(
        {
            "artifact": artifacts["variant"],
            "MB": artifacts["file_bytes"] / 1e6,
            "fused operators": artifacts["fused_operators"].map(_fused_text),
            "max abs diff": artifacts["parity_max_abs_diff"],
            "min cosine": artifacts["parity_min_token_cosine"].map(lambda v: f"{v:.6f}"),
        }
    )
    return "ONNX artifacts (parity checked on the CPU execution provider when built):\n\n" + markdown_table(table)


def _fused_text(encoded: str) -> str:
    counts = json.loads(encoded) if isinstance(encoded, str) and encoded else {}
    return ", ".join(f"{op} {n}" for op, n in counts.items()) or "none"


def baseline_wins(summary: pd.DataFrame) -> list[str]:
    """Sentences naming each stronger PyTorch baseline that beats an ONNX Runtime variant, and where."""
    sentences = []
    onnx = summary[summary["variant"].isin(variant_names(engine="onnxruntime"))]
    for baseline in variant_names(role="stronger_baseline"):
        rows = summary[summary["variant"] == baseline]
        for variant in sort_variants(onnx)["variant"].unique():
            beaten = []
            for row in rows.itertuples():
                other = onnx[(onnx["variant"] == variant) & (onnx["batch_size"] == row.batch_size)
                             & (onnx["sequence_length"] == row.sequence_length)]
                if not other.empty and row.p50_ms < other["p50_ms"].iloc[0]:
                    beaten.append(f"{row.batch_size}")
            if beaten:
                sentences.append(f"`{baseline}` is faster than `{variant}` at batch {', '.join(beaten)}.")
    return sentences


def _targets_block(summary_path: Path, targets: Sequence[Target], report_missing: bool) -> str:
    """The configured targets of this summary's tag; where the summary has no row for one, it says so
    (for this run's models) or leaves it out (for an experiment's)."""
    summary = read_csv(summary_path)
    wins = baseline_wins(summary)
    notes = ("Stronger PyTorch baselines: " + " ".join(wins) + "\n\n") if wins else ""
    rows = [row for row in evaluate_targets(summary, targets) if report_missing or not math.isnan(row["measured"])]
    if not rows:
        return notes
    table = pd.DataFrame(
        {
            "target": [row["target"] for row in rows],
            "measured": [_measured_text(row) for row in rows],
            "met": [_met_text(row) for row in rows],
        }
    )
    return notes + "Targets (median latency, this tag):\n\n" + markdown_table(table)


def _measured_text(row: dict[str, Any]) -> str:
    if math.isnan(row["measured"]):
        return "no matching row"
    return row["shown"] or format_number(row["measured"])


def _met_text(row: dict[str, Any]) -> str:
    if math.isnan(row["measured"]):
        return "not measured: no result at this variant, batch and sequence length"
    return "yes" if row["met"] else f"no ({row['gap']})"


def _tag_block(summary_path: Path) -> str:
    tag = layout.parse_summary_path(summary_path).hardware
    summary = sort_variants(read_csv(summary_path))
    env_path = layout.beside_summary(summary_path, layout.ENVIRONMENT)
    environment = read_json(env_path) if env_path.exists() else {}
    memory = "peak GPU memory" if summary["peak_gpu_memory_bytes"].notna().any() else "peak process RSS"
    return (
        f"**{tag}** ({machine_line(environment)}); latencies per batch, {memory}, "
        f"parity against PyTorch FP32 on padded inputs.\n\n" + stale_note(environment)
        + markdown_table(results_table(summary)) + quiet_note(summary)
    )


def stale_note(environment: dict[str, Any]) -> str:
    """A warning above a table measured by other code than this checkout's (tables from before the code hash
    was recorded say nothing either way)."""
    recorded = environment.get("code_hash")
    if not recorded or recorded == measuring_code_hash():
        return ""
    return (f"**Stale:** measured by other code (code hash {recorded}, this checkout's {measuring_code_hash()}); "
            f"`snakemake --cores 1` measures it again.\n\n")


def quiet_note(summary: pd.DataFrame) -> str:
    """What the quiet-machine check and the canary saw while this table was measured (older summaries, from
    before the check, have no such columns and get no note)."""
    if "other_cpu_share" not in summary or summary["other_cpu_share"].isna().all():
        return ""
    timed = summary[summary["status"] == "ok"]
    retried = int(timed["timing_retried"].fillna(False).astype(bool).sum())
    noisy = int(timed["noisy"].fillna(False).astype(bool).sum())
    note = (f"\nQuiet-machine check: other processes used at most {timed['other_cpu_share'].max():.0%} of the "
            f"machine while a job timed; {retried} of {len(timed)} jobs timed twice for going over the threshold, "
            f"{noisy} still over after it.")
    canary = timed["canary_vs_calibration"].dropna()
    if not canary.empty:
        note += (f" The canary (a fixed {CANARY_SIZE}×{CANARY_SIZE} matrix multiply at each job's start) ran at "
                 f"{canary.min():.2f}–{canary.max():.2f}× its time in the calibration job: absolute figures "
                 f"move with the host by about that much.")
    return note + "\n"


def splice(readme_text: str, section: str) -> str:
    """Replace what lies between the markers; everything outside them is kept byte for byte."""
    start, end = readme_text.find(START), readme_text.find(END)
    if start < 0 or end < 0 or end < start:
        raise MarkerError(
            f"the README has no results section to rewrite: put the lines {START} and {END}, in that order, "
            f"where it goes"
        )
    head = readme_text[: start + len(START)]
    tail = readme_text[end:]
    return f"{head}\n{section.strip()}\n{tail}"


def update_readme(
    readme_path: str | Path,
    summary_paths: Sequence[str | Path],
    models: Sequence[str],
    targets: Sequence[Target] = (),
) -> bool:
    """Rewrite the results section; True when the file changed."""
    path = Path(readme_path)
    old = path.read_text()
    new = splice(old, results_section(summary_paths, models, targets, root=path.parent))
    if new != old:
        write_text_atomic(path, new)
    return new != old
