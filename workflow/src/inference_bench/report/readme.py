"""The README's results section, rewritten between marker comments from the committed summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from inference_bench import layout
from inference_bench.report.aggregate import sort_variants
from inference_bench.artifacts import read_csv, read_json, write_text_atomic
from inference_bench.measure.quiet import CANARY_SIZE
from inference_bench.environment import measuring_code_hash
from inference_bench.errors import PipelineError
from inference_bench.report.provenance import config_staleness
from inference_bench.report.recommend import (Constraints, cheapest, largest_batch, recommend,
                                               recommendation_lines)
from inference_bench.report.tables import UNPAIRED_MARK, format_number, machine_line, markdown_table, results_table
from inference_bench.report.targets import Target, evaluate_targets
from inference_bench.report.variance import variance_markdown
from inference_bench.variants import variant_names

START = "<!-- results:start (written by `snakemake --cores 1 readme`; edits inside are overwritten) -->"
END = "<!-- results:end -->"
#: The variance table in "How it measures" (the reference machine's, report.variance).
VARIANCE_START = "<!-- variance:start (written by `snakemake --cores 1 readme` from the reference machine's variance.csv) -->"
VARIANCE_END = "<!-- variance:end -->"


class MarkerError(PipelineError, ValueError):
    """The README lacks the marker comments, or has them out of order."""


#: Where the tables of models outside this run's config (config/experiments/) are written, beside the text
#: that says why each experiment was run; the README keeps this run's models, up front.
EXPERIMENTS_PAGE = Path("config/experiments/README.md")


def results_section(
    summary_paths: Sequence[str | Path],
    models: Sequence[str],
    targets: Sequence[Target] = (),
    root: Path = Path("."),
    others: bool = True,
    link_prefix: str = "",
    reference_hardware: str | None = None,
    constraints: Constraints = Constraints(),
    prices: dict[str, float | None] | None = None,
) -> str:
    """A block per model: this run's `models` first, then (with `others`) any other model that has a
    summary. Charts are linked where they exist under `root` (the project's folder), each link prefixed with
    `link_prefix` (the way from the page's folder to the project's). A target of this run's models with no
    matching row says so; other models show only the targets they have rows for. Within a model, the
    `reference_hardware` machine's table comes first, then every other machine's by name."""
    keyed = [(layout.parse_summary_path(p), Path(p)) for p in summary_paths]
    rest = sorted({key.model for key, _ in keyed} - set(models)) if others else []
    parts: list[str] = []
    for model in [*models, *rest]:
        paths = sorted(((key.hardware != reference_hardware, key.hardware), path)
                       for key, path in keyed if key.model == model)
        if not paths:
            continue
        parts.append(f"### {model}\n")
        for (_, tag), path in paths:
            parts.append(_tag_block(path, reference=tag == reference_hardware and len(paths) > 1,
                                    constraints=constraints, prices=prices or {}))
            parts.append(_targets_block(path, targets, report_missing=model in models))
        parts.append(cheapest_block([path for _, path in paths], constraints, prices or {}))
        parts.append(_artifacts_block(layout.beside_summary(paths[0][1], layout.ARTIFACT_TABLE)))
        charts = [
            chart for chart in layout.CHARTS
            if (chart != "hardware" or len(paths) > 1) and (root / layout.CHART.format(model=model, chart=chart)).exists()
        ]
        if charts:
            parts.append(" ".join(f"![{c}]({link_prefix}{layout.CHART.format(model=model, chart=c)})"
                                  for c in charts) + "\n")
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
    if "fp32_matmuls" in artifacts and artifacts["fp32_matmuls"].notna().any():
        table["MatMuls kept FP32"] = artifacts["fp32_matmuls"].fillna("–")
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
                    beaten.append((row.batch_size, row.sequence_length))
            if beaten:
                sentences.append(f"`{baseline}` is faster than `{variant}` at {_shapes_text(beaten)}.")
    return sentences


def _shapes_text(shapes: Sequence[tuple[int, int]]) -> str:
    """`batch 1, 32` for one sequence length; `batch 1 and 32 at sequence 16, batch 32 at sequence 128` else."""
    by_length: dict[int, list[int]] = {}
    for batch, length in shapes:
        by_length.setdefault(int(length), []).append(int(batch))
    if len(by_length) == 1:
        return "batch " + ", ".join(map(str, next(iter(by_length.values()))))
    return ", ".join(f"batch {' and '.join(map(str, batches))} at sequence {length}"
                     for length, batches in sorted(by_length.items()))


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
    return notes + "Targets (this tag; a target inside the 95% interval of its row is within noise, neither met nor missed):\n\n" + markdown_table(table)


def _measured_text(row: dict[str, Any]) -> str:
    if math.isnan(row["measured"]):
        return "no matching row"
    text = row["shown"] or format_number(row["measured"])
    if math.isnan(row.get("low", math.nan)) or row["low"] == row["high"]:
        return text
    percent = (row["shown"] or "").endswith("%")
    low, high = (f"{row['low']:.0%}", f"{row['high']:.0%}") if percent else (f"{row['low']:.2f}", f"{row['high']:.2f}")
    return f"{text} [{low}–{high}]"


def _met_text(row: dict[str, Any]) -> str:
    if math.isnan(row["measured"]):
        return "not measured: no result at this variant, batch and sequence length"
    if row.get("undecided"):
        return "within noise: the 95% interval holds the target"
    return "yes" if row["met"] else f"no ({row['gap']})"


def deploy_block(summary: pd.DataFrame, constraints: Constraints, prices: dict[str, float | None]) -> str:
    """"What to deploy" above a machine's table: one line per shape (inference_bench.report.recommend), and
    with a latency objective the largest batch that meets it."""
    recommendations = recommend(summary, constraints, prices)
    if recommendations.empty:
        return ""
    objective = f", p99 within {format_number(constraints.max_p99_ms)} ms" if constraints.max_p99_ms else ""
    gate = (f"at least {constraints.min_accuracy_relative:g}" if constraints.min_accuracy_relative is not None
            else "the accuracy gate")
    text = (f"**What to deploy** (the fastest variant whose task accuracy relative to PyTorch FP32 meets {gate}"
            f"{objective}; variants whose speedup intervals overlap are tied, the smaller file then the lower "
            f"peak memory first):\n\n")
    text += "".join(f"- {line}\n" for line in recommendation_lines(recommendations)) + "\n"
    if constraints.max_p99_ms:
        for row in largest_batch(recommendations, constraints).itertuples():
            text += (f"Largest batch within p99 {format_number(constraints.max_p99_ms)} ms at sequence "
                     f"{row.sequence_length}: {row.batch_size} ({row.choice}, {format_number(row.throughput_seq_per_s)} "
                     f"sequences/s).\n\n")
    return text


def cheapest_block(summary_paths: Sequence[Path], constraints: Constraints, prices: dict[str, float | None]) -> str:
    """With prices on two or more machines: the cheapest machine-variant pair per million sequences, per shape."""
    if sum(1 for path in summary_paths if prices.get(layout.parse_summary_path(path).hardware)) < 2:
        return ""
    frames = [read_csv(path) for path in summary_paths]
    best = cheapest(recommend(pd.concat(frames, ignore_index=True), constraints, prices))
    lines = [f"- batch {row.batch_size}, sequence {row.sequence_length}: **{row.choice}** on {row.hardware}, "
             f"{row.cost_per_million:.3g} per million sequences" for row in best.itertuples()]
    return ("**Cheapest per million sequences** (among the recommendations above):\n\n" + "\n".join(lines) + "\n"
            if lines else "")


def _tag_block(summary_path: Path, reference: bool = False, constraints: Constraints = Constraints(),
               prices: dict[str, float | None] | None = None) -> str:
    tag, model = layout.parse_summary_path(summary_path).hardware, layout.parse_summary_path(summary_path).model
    summary = sort_variants(read_csv(summary_path))
    env_path = layout.beside_summary(summary_path, layout.ENVIRONMENT)
    environment = read_json(env_path) if env_path.exists() else {}
    memory = "peak GPU memory" if summary["peak_gpu_memory_bytes"].notna().any() else "peak process RSS"
    return (
        f"**{tag}**{' (the reference machine)' if reference else ''} ({machine_line(environment)}); "
        f"latencies per batch, {memory}, "
        f"parity against PyTorch FP32 on padded inputs.\n\n" + stale_note(environment, model, tag)
        + notes_block(environment) + deploy_block(summary, constraints, prices or {})
        + markdown_table(results_table(summary)) + quiet_note(summary) + roofline_note(environment)
        + outlier_lines(summary)
    )


def notes_block(environment: dict[str, Any]) -> str:
    """What the summary says of itself in one line each: an INT8 search that found no passing mix, a roof of
    the calibration refused for making no physical sense."""
    notes = list(environment.get("notes") or [])
    notes += [f"The calibration's {name} roof was refused: {why}; the bounds use the other roofs."
              for name, why in ((environment.get("roofs") or {}).get("refused") or {}).items()]
    return "".join(f"**Note:** {note}\n\n" for note in notes)


def stale_note(environment: dict[str, Any], model: str = "", hardware: str = "") -> str:
    """A warning above a table measured by other code than this checkout's, or under settings its config files
    no longer hold (tables from before the code hash or the config sources were recorded say nothing)."""
    reasons = []
    recorded = environment.get("code_hash")
    if recorded and recorded != measuring_code_hash():
        reasons.append(f"measured by other code (code hash {recorded}, this checkout's {measuring_code_hash()})")
    config = config_staleness(environment, model, hardware) if model and hardware else None
    if config:
        reasons.append(config)
    if not reasons:
        return ""
    files = (environment.get("config_sources") or {}).get("files", [])
    rerun = "snakemake --cores 1" + "".join(f" --configfile {f}" for f in files if f != "config/config.yaml")
    return f"**Stale:** {'; '.join(reasons)}; `{rerun}` measures it again.\n\n"


def summary_stale_note(summary_path: str | Path) -> str:
    """The stale note of a summary on disk (empty when current, or when it has no environment beside it)."""
    key = layout.parse_summary_path(summary_path)
    env_path = layout.beside_summary(summary_path, layout.ENVIRONMENT)
    return stale_note(read_json(env_path), key.model, key.hardware) if Path(env_path).exists() else ""


def quiet_note(summary: pd.DataFrame) -> str:
    """How the table was timed (processes, blocks, intervals, pairing, whether the target was reached) and what the
    quiet-machine check and the canary saw (older summaries, from rounds or before, get only what they have)."""
    timed = summary[summary["status"] == "ok"]
    notes = []
    if "processes" in timed and timed["processes"].notna().any():
        notes += _design_notes(timed)
    elif "rounds" in timed and timed["rounds"].notna().any():
        rounds = int(timed["rounds"].max())
        notes.append(f"Latencies are absolute: the median of {rounds} round medians, each round a fresh process per "
                     f"variant, with a 95% t interval over the rounds.")
    if "other_cpu_share" in timed and timed["other_cpu_share"].notna().any():
        retried_column = next((c for c in ("retried_blocks", "retried_rounds", "timing_retried") if c in timed), None)
        noisy_column = next((c for c in ("noisy_blocks", "noisy_rounds", "noisy") if c in timed), None)
        retried = int(pd.to_numeric(timed[retried_column], errors="coerce").fillna(0).sum()) if retried_column else 0
        noisy = int(pd.to_numeric(timed[noisy_column], errors="coerce").fillna(0).sum()) if noisy_column else 0
        unit = "blocks" if retried_column == "retried_blocks" else "rounds"
        total = int(pd.to_numeric(timed.get(unit, pd.Series(dtype=float)), errors="coerce").fillna(1).sum()) \
            if unit in timed else len(timed)
        notes.append(
            f"Quiet-machine check: other processes used at most {timed['other_cpu_share'].max():.0%} of the machine "
            f"while a {unit[:-1]} timed; {retried} of {total} {unit} timed twice for going over the threshold, "
            f"{noisy} still over after it."
        )
    if "idle_workers_cpu_share" in timed and timed["idle_workers_cpu_share"].notna().any():
        notes.append(f"The idle workers (stopped while another timed) used at most "
                     f"{timed['idle_workers_cpu_share'].max():.2%} of a core during any block.")
    canary = timed["canary_vs_calibration"].dropna() if "canary_vs_calibration" in timed else pd.Series(dtype=float)
    if not canary.empty:
        notes.append(
            f"The canary (a fixed {CANARY_SIZE}×{CANARY_SIZE} matrix multiply at each process's start) ran at "
            f"{canary.min():.2f}–{canary.max():.2f}× its time in the calibration job: absolute figures move with "
            f"the host by about that much; paired ratios much less."
        )
    return ("\n" + " ".join(notes) + "\n") if notes else ""


def _design_notes(timed: pd.DataFrame) -> list[str]:
    """The block design's part of the note: processes per row, pairing, how many rows reached the target."""
    processes = pd.to_numeric(timed["processes"], errors="coerce")
    notes = [f"Latencies are absolute: the median of each variant's process medians ({_span(processes)} fresh "
             f"processes per variant, timed in interleaved blocks), with a 95% t interval over the processes."]
    if "speedup_ci_low" in timed and timed["speedup_ci_low"].notna().any():
        notes.append("Speedups are paired block by block: per process, the mean log ratio of PyTorch's block to the "
                     "variant's in the same cycle, with a t interval over processes; an interval that holds 1.0 is "
                     "no measurable difference.")
    else:
        notes.append("No PyTorch row was timed with these variants, so there are no speedups: compare latencies "
                     "within one table only.")
    if "host_disturbed_share" in timed and timed["host_disturbed_share"].notna().any():
        notes.append(host_note(timed))
    if "reached_target" in timed and timed["reached_target"].notna().any():
        target = pd.to_numeric(timed["target_interval"], errors="coerce").max() if "target_interval" in timed \
            else math.nan
        missed = timed[timed["reached_target"].astype(str) == "False"]
        shapes = sorted({(int(r.batch_size), int(r.sequence_length)) for r in missed.itertuples()})
        target_text = f"±{100 * target:g}%" if not math.isnan(target) else "the target"
        if shapes:
            notes.append(f"The comparisons at {', '.join(f'batch {b}, sequence {q}' for b, q in shapes)} spent their "
                         f"time budget before every speedup was known to {target_text}: their intervals say how "
                         f"far they got.")
        else:
            notes.append(f"Every comparison stopped once each speedup was known to {target_text}.")
    if "speedup_paired" in timed and (timed["speedup_paired"].astype(str) == "False").any():
        notes.append(f"{UNPAIRED_MARK} timed in another comparison than its PyTorch row: resampled unpaired.")
    return notes


def host_note(timed: pd.DataFrame) -> str:
    """How much of the comparisons' time the host was disturbed, and what the speedups counted (measure.host)."""
    shares = pd.to_numeric(timed["host_disturbed_share"], errors="coerce").dropna()
    low, high = round(100 * shares.min()), round(100 * shares.max())
    span = f"{low}%" if low == high else f"{low}–{high}%"
    note = (f"The host was disturbed (a probe between cycles more than `max_host_slowdown` slower than its "
            f"undisturbed level) in {span} of each comparison's cycles")
    counted = timed.get("host_counted", pd.Series(dtype=object)).astype(str)
    kept = timed[counted == "undisturbed cycles"]
    shapes = sorted({(int(r.batch_size), int(r.sequence_length)) for r in kept.itertuples()})
    if shapes:
        return note + (f"; the speedups at {', '.join(f'batch {b}, sequence {q}' for b, q in shapes)} count the "
                       f"undisturbed cycles only, the others every cycle." if len(shapes) < _shape_count(timed)
                       else "; the speedups count the undisturbed cycles only.")
    return note + "; the speedups count every cycle, in whichever state the host was."


def _shape_count(timed: pd.DataFrame) -> int:
    return len({(r.batch_size, r.sequence_length) for r in timed.itertuples()})


def _span(values: pd.Series) -> str:
    low, high = int(values.min()), int(values.max())
    return str(low) if low == high else f"{low}–{high}"


def roofline_note(environment: dict[str, Any]) -> str:
    """What the `% of bound` column is measured against: the roofs the summary used, and the theoretical peak
    where the CPU and its clock say enough (empty for summaries from before the roofline)."""
    roofs = environment.get("roofs") or {}
    peaks, memory = roofs.get("peak_gflops") or {}, roofs.get("memory_roofs") or {}
    if not peaks or not memory.get("memory"):
        return ""
    peak_text = ", ".join(f"{precision.upper()} {value:.0f}" for precision, value in sorted(peaks.items()))
    text = (f"% of bound: each row's roofline bound is the larger of its compute time (every matrix multiply at the "
            f"best rate of its precision this machine reached, GFLOP/s or GOP/s: {peak_text}; square sizes in the "
            f"calibration and the model's own shapes in each comparison) and its memory time (the bytes its pass "
            f"must move at {memory['memory']['roof_gbs']:.0f} GB/s from memory")
    cache = memory.get("cache")
    if cache and memory.get("last_level_cache_bytes"):
        text += (f", or {cache['roof_gbs']:.0f} GB/s when they fit the "
                 f"{memory['last_level_cache_bytes'] / 2**20:.0f} MiB last-level cache")
    text += "); the share is that bound over the row's median, and the roof in brackets is the one that sets it."
    theoretical = roofs.get("theoretical")
    if theoretical and "fp32" in peaks:
        fp32 = theoretical["peak_gflops"]["fp32"]
        per_core_cycle = theoretical["cores"] * theoretical["fp32_flops_per_cycle_per_core"]
        text += (f" Theoretical FP32 peak: {theoretical['cores']} cores × "
                 f"{theoretical['fp32_flops_per_cycle_per_core']} FLOP/cycle × {theoretical['clock_ghz']:.2f} GHz = "
                 f"{fp32:.0f} GFLOP/s, at {theoretical['clock_source']}; the measured {peaks['fp32']:.0f} is "
                 f"{peaks['fp32'] / fp32:.0%} of it")
        text += (f", as if the cores ran at {peaks['fp32'] / per_core_cycle:.2f} GHz." if peaks["fp32"] > fp32
                 else ".")
    return "\n" + text + "\n"


def outlier_lines(summary: pd.DataFrame) -> str:
    """The rows much slower than PyTorch eager, with what their jobs saw (aggregate.outlier_note)."""
    if "outlier" not in summary:
        return ""
    flagged = summary[summary["outlier"].notna()]
    if flagged.empty:
        return ""
    lines = [f"- {row.variant} at batch {row.batch_size}, sequence {row.sequence_length}: {row.outlier}"
             for row in flagged.itertuples()]
    return "\nOutliers (more than 1.5× slower than PyTorch eager at the same shape):\n\n" + "\n".join(lines) + "\n"


def splice(readme_text: str, section: str, start_marker: str = START, end_marker: str = END,
           what: str = "results section") -> str:
    """Replace what lies between the markers; everything outside them is kept byte for byte."""
    start, end = readme_text.find(start_marker), readme_text.find(end_marker)
    if start < 0 or end < 0 or end < start:
        raise MarkerError(
            f"the README has no {what} to rewrite: put the lines {start_marker} and {end_marker}, in that "
            f"order, where it goes"
        )
    head = readme_text[: start + len(start_marker)]
    tail = readme_text[end:]
    return f"{head}\n{section.strip()}\n{tail}"


def variance_section(summary_paths: Sequence[str | Path], models: Sequence[str],
                     reference_hardware: str | None) -> str | None:
    """The reference machine's variance table for the run's first model (else the first table there is);
    None when no summary has one beside it."""
    candidates = []
    for path in summary_paths:
        key = layout.parse_summary_path(path)
        beside = layout.beside_summary(path, layout.VARIANCE)
        if Path(beside).exists():
            rank = (key.hardware != reference_hardware, key.model not in models,
                    list(models).index(key.model) if key.model in models else 0)
            candidates.append((rank, path, beside))
    if not candidates:
        return None
    _, summary_path, variance_path = min(candidates, key=lambda c: c[0])
    environment_path = layout.beside_summary(summary_path, layout.ENVIRONMENT)
    machine = layout.parse_summary_path(summary_path).hardware
    if Path(environment_path).exists():
        machine = f"{machine} ({machine_line(read_json(environment_path)).split(';')[0]})"
    return variance_markdown(pd.read_csv(variance_path), machine)


def update_readme(
    readme_path: str | Path,
    summary_paths: Sequence[str | Path],
    models: Sequence[str],
    targets: Sequence[Target] = (),
    reference_hardware: str | None = None,
    constraints: Constraints = Constraints(),
    prices: dict[str, float | None] | None = None,
) -> bool:
    """Rewrite the README's results section with this run's models, and the experiments page's (when the
    project has one) with every other model's; True when a file changed. Each model's tables start with the
    `reference_hardware` machine's."""
    path = Path(readme_path)
    page = path.parent / EXPERIMENTS_PAGE
    changed = _rewrite(path, results_section(summary_paths, models, targets, root=path.parent,
                                             others=not page.exists(), reference_hardware=reference_hardware,
                                             constraints=constraints, prices=prices))
    variance = variance_section(summary_paths, models, reference_hardware)
    if variance is not None and VARIANCE_START in path.read_text():
        changed |= _rewrite(path, variance, VARIANCE_START, VARIANCE_END)
    if page.exists():
        experiments = [p for p in summary_paths if layout.parse_summary_path(p).model not in set(models)]
        prefix = "../" * len(EXPERIMENTS_PAGE.parent.parts)
        changed |= _rewrite(page, results_section(experiments, [], targets, root=path.parent, link_prefix=prefix,
                                                  reference_hardware=reference_hardware, constraints=constraints,
                                                  prices=prices))
    return changed


def _rewrite(path: Path, section: str, start_marker: str = START, end_marker: str = END) -> bool:
    old = path.read_text()
    new = splice(old, section, start_marker, end_marker,
                 "results section" if start_marker == START else "variance table")
    if new != old:
        write_text_atomic(path, new)
    return new != old
