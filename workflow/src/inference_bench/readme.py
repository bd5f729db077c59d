"""The README's results section, rewritten between marker comments from the committed summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from inference_bench import CHARTS
from inference_bench.aggregate import format_number, machine_line, markdown_table, results_table, sort_variants
from inference_bench.artifacts import read_json
from inference_bench.targets import evaluate_targets

START = "<!-- results:start (written by `snakemake --cores 1 readme`; edits inside are overwritten) -->"
END = "<!-- results:end -->"


class MarkerError(ValueError):
    """The README lacks the marker comments, or has them out of order."""


def results_section(
    summary_paths: Sequence[str | Path], models: Sequence[str], root: Path = Path("."), images_dir: str = "images"
) -> str:
    """A block per model: this run's `models` first, then any other model that has a summary. Charts are
    linked where they exist under `root` (the README's folder)."""
    others = sorted({Path(p).parent.name for p in summary_paths} - set(models))
    parts: list[str] = []
    for model in [*models, *others]:
        paths = [Path(p) for p in summary_paths if Path(p).parent.name == model]
        if not paths:
            continue
        tags = sorted(p.parent.parent.name for p in paths)
        parts.append(f"### {model}\n")
        ordered = sorted(paths, key=lambda p: p.parent.parent.name)
        for path in ordered:
            parts.append(_tag_block(path))
            parts.append(_targets_block(path))
        parts.append(_artifacts_block(ordered[0].parent / "artifacts.csv"))
        charts = [
            c for c in CHARTS if (c != "hardware" or len(tags) > 1) and (root / images_dir / model / f"{c}.png").exists()
        ]
        if charts:
            parts.append(" ".join(f"![{c}]({images_dir}/{model}/{c}.png)" for c in charts) + "\n")
    return "\n".join(parts)


def _artifacts_block(artifacts_csv: Path) -> str:
    """Each ONNX file, timed on this tag or not: size, fused operators, parity (at build time, on the CPU)."""
    if not artifacts_csv.exists():
        return ""
    artifacts = pd.read_csv(artifacts_csv)
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


STRONGER_BASELINES = ("pytorch-compile", "pytorch-bf16")


def baseline_wins(summary: pd.DataFrame) -> list[str]:
    """Sentences naming each stronger PyTorch baseline that beats an ONNX variant, and where."""
    sentences = []
    onnx = summary[summary["variant"].str.startswith(("onnx-", "ort-", "fp16-"))]
    for baseline in STRONGER_BASELINES:
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


def _targets_block(summary_path: Path) -> str:
    """The roadmap's targets, where this summary has what they need."""
    summary = pd.read_csv(summary_path)
    wins = baseline_wins(summary)
    notes = ("Stronger PyTorch baselines: " + " ".join(wins) + "\n\n") if wins else ""
    rows = [row for row in evaluate_targets(summary) if row["measured"] == row["measured"]]
    if not rows:
        return notes
    table = pd.DataFrame(
        {
            "target": [row["target"] for row in rows],
            "measured": [row["shown"] or format_number(row["measured"]) for row in rows],
            "met": ["yes" if row["met"] else f"no ({row['gap']})" for row in rows],
        }
    )
    return notes + "Targets (median latency, this tag):\n\n" + markdown_table(table)


def _tag_block(summary_path: Path) -> str:
    tag = summary_path.parent.parent.name
    summary = sort_variants(pd.read_csv(summary_path))
    env_path = summary_path.parent / "environment.json"
    environment = read_json(env_path) if env_path.exists() else {}
    memory = "peak GPU memory" if summary["peak_gpu_memory_bytes"].notna().any() else "peak process RSS"
    return (
        f"**{tag}** ({machine_line(environment)}); latencies per batch, {memory}, "
        f"parity against PyTorch FP32 on padded inputs.\n\n" + markdown_table(results_table(summary))
    )


def splice(readme_text: str, section: str) -> str:
    """Replace what lies between the markers; everything outside them is kept byte for byte."""
    start, end = readme_text.find(START), readme_text.find(END)
    if start < 0 or end < 0 or end < start:
        raise MarkerError(f"README needs the markers\n{START}\n{END}\nin that order")
    head = readme_text[: start + len(START)]
    tail = readme_text[end:]
    return f"{head}\n{section.strip()}\n{tail}"


def update_readme(readme_path: str | Path, summary_paths: Sequence[str | Path], models: Sequence[str]) -> bool:
    """Rewrite the results section; True when the file changed."""
    path = Path(readme_path)
    old = path.read_text()
    new = splice(old, results_section(summary_paths, models, root=path.parent))
    if new != old:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new)
        tmp.replace(path)
    return new != old
