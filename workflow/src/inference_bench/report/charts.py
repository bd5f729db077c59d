"""The README's charts, from every hardware tag's summary of one model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from inference_bench import layout  # noqa: E402
from inference_bench.artifacts import read_csv, read_json  # noqa: E402
from inference_bench.measure.statistics import NO_MEASURABLE_DIFFERENCE  # noqa: E402
from inference_bench.report.tables import machine_line  # noqa: E402
from inference_bench.variants import BASELINE, VARIANTS, precision_of, variant_order  # noqa: E402

log = logging.getLogger(__name__)

_MB = 1e6


def load_results(summary_paths: Sequence[str | Path], model: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Summaries, artifact sizes and each tag's environment for `model`, from every tag given."""
    frames, artifacts, environments = [], [], {}
    for path in map(Path, summary_paths):
        key = layout.parse_summary_path(path)
        if key.model != model:
            continue
        frames.append(read_csv(path))
        artifact_table = layout.beside_summary(path, layout.ARTIFACT_TABLE)
        if artifact_table.exists():
            artifacts.append(read_csv(artifact_table).assign(hardware=key.hardware))
        environment = layout.beside_summary(path, layout.ENVIRONMENT)
        if environment.exists():
            environments[key.hardware] = read_json(environment)
    if not frames:
        raise ValueError(f"no summaries for model {model!r}")
    # Failed jobs have no timing: the README table names them, the charts leave them out.
    summary = pd.concat(frames, ignore_index=True).dropna(subset=["p50_ms"])
    return summary, (pd.concat(artifacts, ignore_index=True) if artifacts else pd.DataFrame()), environments


def draw_charts(summary_paths: Sequence[str | Path], model: str, out_dir: str | Path) -> list[Path]:
    summary, artifacts, environments = load_results(summary_paths, model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook")
    caption = _caption(summary, environments)
    painters = {
        "speedup": _speedup,
        "throughput": _throughput,
        "latency": _latency,
        "efficiency": _efficiency,
        "roofline": lambda s: _roofline(s, environments),
        "memory": lambda s: _memory(s, artifacts),
        "tradeoff": _tradeoff,
        "hardware": _hardware,
    }
    written = []
    for name in layout.CHARTS:
        figure = painters[name](summary)
        figure.suptitle(f"{model}: {_TITLES[name]}", fontsize=13, fontweight="bold")
        figure.text(0.01, 0.005, caption, fontsize=7.5, color="0.3", ha="left", va="bottom")
        figure.tight_layout(rect=(0, 0.035 * (caption.count("\n") + 1), 1, 0.97))
        path = out / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    log.info("wrote %d charts to %s", len(written), out)
    return written


_TITLES = {
    "speedup": "speedup over PyTorch FP32 eager (paired blocks, 95% interval)",
    "throughput": "throughput (higher is better)",
    "latency": "latency per batch: median bar, p90 dot, p99 whisker (lower is better)",
    "efficiency": "achieved GFLOP/s, and each bar's share of its roofline bound",
    "roofline": "roofline (achieved GFLOP/s against FLOPs per byte moved)",
    "memory": "model size and peak memory (lower is better)",
    "tradeoff": "latency against accuracy drift from PyTorch FP32",
    "hardware": "speedup over PyTorch FP32 eager, machine by machine (95% interval)",
}


_PLAIN_NUMBERS = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")


def _log_axis(ax) -> None:
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PLAIN_NUMBERS)
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _legend_outside(ax) -> None:
    ax.legend(fontsize=8, title=None, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _caption(summary: pd.DataFrame, environments: dict[str, dict[str, Any]]) -> str:
    seqs = ", ".join(str(s) for s in sorted(summary["sequence_length"].unique()))
    lines = [f"sequence length {seqs}; seeded random token ids, no padding"]
    for tag in sorted(summary["hardware"].unique()):
        env = environments.get(tag, {})
        lines.append(f"{tag}: {machine_line(env)}" if env else tag)
    return "\n".join(lines)


def _variant_order(frame: pd.DataFrame) -> list[str]:
    return variant_order(frame["variant"])


def _palette() -> dict[str, Any]:
    """A colour per variant, none repeated: tab10's ten, then Dark2's."""
    colours = sns.color_palette("tab10", 10) + sns.color_palette("Dark2", 8)
    if len(VARIANTS) > len(colours):
        colours = sns.color_palette("husl", len(VARIANTS))
    return dict(zip(VARIANTS, colours))


def _facets(summary: pd.DataFrame) -> tuple[list[str], list[int]]:
    return sorted(summary["hardware"].unique()), sorted(summary["sequence_length"].unique())


def _grid(rows: int, cols: int, height: float = 3.6):
    figure, axes = plt.subplots(rows, cols, figsize=(10, height * rows + 0.8), squeeze=False)
    return figure, axes


def _bars_by_batch(
    summary: pd.DataFrame,
    y: str,
    ylabel: str,
    log_scale: bool = False,
    label_fmt: str | None = None,
    label_of_row: Callable[[pd.Series], str] | None = None,
    interval: tuple[str, str] | None = None,
    label_rotation: int = 0,
):
    """Bars per batch size and variant, one panel per (hardware tag, sequence length). Bars are labelled
    with their value (`label_fmt`) or with `label_of_row` of the summary row they draw; `interval` names the
    columns of an error bar's low and high ends."""
    tags, seqs = _facets(summary)
    figure, axes = _grid(len(tags), len(seqs))
    palette = _palette()
    for r, tag in enumerate(tags):
        for c, seq in enumerate(seqs):
            ax = axes[r][c]
            data = summary[(summary["hardware"] == tag) & (summary["sequence_length"] == seq)].dropna(subset=[y])
            if data.empty:
                ax.set_axis_off()
                continue
            sns.barplot(data=data, x="batch_size", y=y, hue="variant", hue_order=_variant_order(data),
                        palette=palette, ax=ax)
            if label_fmt:
                for container in ax.containers:
                    ax.bar_label(container, fmt=label_fmt, fontsize=7, padding=1)
            for bar, row in _bars_with_rows(ax, data):
                if row is None:
                    continue
                centre, value, top = bar.get_x() + bar.get_width() / 2, row[y], row[y]
                if interval and not pd.isna(row[interval[0]]):
                    ax.errorbar([centre], [value], yerr=[[value - row[interval[0]]], [row[interval[1]] - value]],
                                fmt="none", ecolor="0.1", elinewidth=1, capsize=2)
                    top = row[interval[1]]
                if label_of_row:  # above the bar, or above its error bar
                    ax.annotate(label_of_row(row), (centre, top), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=7, rotation=label_rotation)
            if log_scale:
                _log_axis(ax)
            ax.set_title(f"{tag}, sequence {seq}")
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            _legend_outside(ax)
    return figure, axes


def _bars_with_rows(ax, data: pd.DataFrame):
    """Each bar seaborn drew, with the summary row it stands for (None for a gap)."""
    batches = sorted(data["batch_size"].unique())
    for variant, container in zip(_variant_order(data), ax.containers):
        for bar in container:
            # Categories sit at x = 0, 1, 2...; the bar's centre rounds to its batch size.
            batch = batches[int(round(bar.get_x() + bar.get_width() / 2))]
            row = data[(data["variant"] == variant) & (data["batch_size"] == batch)]
            yield bar, (row.iloc[0] if not row.empty else None)


def _speedup_label(row: pd.Series) -> str:
    if row.get("speedup_verdict") == NO_MEASURABLE_DIFFERENCE:
        return "≈1×"
    return f"{row['speedup_vs_pytorch']:.1f}×"


def _speedup(summary: pd.DataFrame):
    interval = ("speedup_ci_low", "speedup_ci_high") if "speedup_ci_low" in summary else None
    figure, axes = _bars_by_batch(summary, "speedup_vs_pytorch", "speedup (×)", label_of_row=_speedup_label,
                                  interval=interval, label_rotation=90)  # upright: neighbours' labels never collide
    for ax in axes.flat:
        if ax.axison:
            ax.axhline(1.0, color="0.2", linewidth=1, linestyle="--")
            ax.set_ylim(top=ax.get_ylim()[1] * 1.15)  # room above the highest error bar for its upright label
    return figure


def _throughput(summary: pd.DataFrame):
    figure, _ = _bars_by_batch(summary, "throughput_seq_per_s", "throughput (sequences/s)", label_fmt="%.0f")
    return figure


def _latency(summary: pd.DataFrame):
    figure, axes = _bars_by_batch(summary, "p50_ms", "latency per batch (ms, log)", log_scale=True)
    tags, seqs = _facets(summary)
    for r, tag in enumerate(tags):
        for c, seq in enumerate(seqs):
            ax = axes[r][c]
            data = summary[(summary["hardware"] == tag) & (summary["sequence_length"] == seq)]
            variants, batches = _variant_order(data), sorted(data["batch_size"].unique())
            width = 0.8 / max(len(variants), 1)
            for j, variant in enumerate(variants):
                for i, batch in enumerate(batches):
                    row = data[(data["variant"] == variant) & (data["batch_size"] == batch)]
                    if row.empty:
                        continue
                    x = i - 0.4 + width * (j + 0.5)
                    p50, p90, p99 = row[["p50_ms", "p90_ms", "p99_ms"]].iloc[0]
                    ax.vlines(x, p50, p99, color="0.15", linewidth=1)
                    ax.plot([x], [p90], marker="o", markersize=3, color="0.15")
    return figure


#: The roof under a bar's label in the efficiency chart.
_ROOF_ABBREVIATIONS = {"compute": "cmp", "memory": "mem", "cache": "llc"}


def _efficiency(summary: pd.DataFrame):
    def share(row: pd.Series) -> str:
        if "share_of_bound" in row and pd.notna(row["share_of_bound"]):
            return f"{row['share_of_bound']:.0%} {_ROOF_ABBREVIATIONS.get(row['bound_roof'], '')}"
        return f"{row['share_of_peak']:.0%}" if pd.notna(row["share_of_peak"]) else ""

    figure, axes = _bars_by_batch(summary, "achieved_gflops", "achieved GFLOP/s (INT8: GOP/s)", label_of_row=share,
                                  label_rotation=90)
    tags, seqs = _facets(summary)
    for r, tag in enumerate(tags):
        data = summary[summary["hardware"] == tag]
        peaks = data.groupby(data["variant"].map(precision_of))["peak_gflops"].first().dropna()
        for c, _ in enumerate(seqs):
            ax = axes[r][c]
            for (precision, peak), style in zip(sorted(peaks.items()), ("--", ":", "-.", "-")):
                ax.axhline(peak, color="0.25", linestyle=style, linewidth=1)
                ax.annotate(f"{precision} matmul peak {peak:.0f}", (0.99, peak), xycoords=("axes fraction", "data"),
                            ha="right", va="bottom", fontsize=8, color="0.25")
    for ax in axes.flat:  # room above the tallest bar and the highest peak line for the upright labels
        if ax.axison:
            ax.set_ylim(top=ax.get_ylim()[1] * 1.25)
    return figure


def _roofline(summary: pd.DataFrame, environments: dict[str, dict[str, Any]]):
    """Per tag: each row at (FLOPs per byte its pass moves, achieved GFLOP/s), log-log, under the roofs of its
    precision: min(peak, bandwidth x intensity), memory's bandwidth solid, the cache's dashed."""
    tags, _ = _facets(summary)
    figure, axes = _grid(len(tags), 1, height=4.6)
    palette = _palette()
    for r, tag in enumerate(tags):
        ax = axes[r][0]
        data = summary[summary["hardware"] == tag]
        if "arithmetic_intensity" not in data or data["arithmetic_intensity"].isna().all():
            ax.text(0.5, 0.5, "no roofline for these results: measured before the model's shape was recorded",
                    ha="center", va="center", transform=ax.transAxes, fontsize=10, color="0.4")
            ax.set_axis_off()
            continue
        data = data.dropna(subset=["arithmetic_intensity", "achieved_gflops"])
        roofs = (environments.get(tag) or {}).get("roofs") or {}
        peaks = {p: v for p, v in (roofs.get("peak_gflops") or {}).items()
                 if p in set(data["variant"].map(precision_of))}
        memory = roofs.get("memory_roofs") or {}
        low, high = data["arithmetic_intensity"].min() / 3, data["arithmetic_intensity"].max() * 3
        x = [low * (high / low) ** (i / 200) for i in range(201)]
        for (precision, peak), colour in zip(sorted(peaks.items()), ("0.15", "0.45", "0.65", "0.8")):
            for level, style in (("memory", "-"), ("cache", "--")):
                bandwidth = (memory.get(level) or {}).get("roof_gbs")
                if bandwidth:
                    ax.plot(x, [min(peak, bandwidth * v) for v in x], color=colour, linestyle=style, linewidth=1.2)
            ax.annotate(f"{precision} peak {peak:.0f}", (high, peak), xytext=(-4, 3), textcoords="offset points",
                        ha="right", va="bottom", fontsize=8, color=colour)
        for level, style in (("memory", "-"), ("cache", "--")):
            bandwidth = (memory.get(level) or {}).get("roof_gbs")
            if bandwidth:
                ax.annotate(f"{level} {bandwidth:.0f} GB/s", (low, bandwidth * low), xytext=(4, 6),
                            textcoords="offset points", fontsize=8, color="0.3", rotation=30)
        sns.scatterplot(data=data, x="arithmetic_intensity", y="achieved_gflops", hue="variant",
                        hue_order=_variant_order(data), style="sequence_length", size="batch_size", sizes=(40, 160),
                        palette=palette, ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(_PLAIN_NUMBERS)
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("arithmetic intensity: FLOPs per byte the pass must move (log)")
        ax.set_ylabel("achieved GFLOP/s (INT8: GOP/s; log)")
        date = str(roofs.get("calibration_date") or "")[:10]
        ax.set_title(f"{tag}: roofs measured by the calibration {date} and the model's own matrix multiplies")
        _legend_outside(ax)
    return figure


def _memory(summary: pd.DataFrame, artifacts: pd.DataFrame):
    tags, _ = _facets(summary)
    figure, axes = _grid(len(tags), 2)
    palette = _palette()
    for r, tag in enumerate(tags):
        data = summary[summary["hardware"] == tag]
        sizes = _model_sizes(data, artifacts[artifacts["hardware"] == tag] if not artifacts.empty else artifacts)
        ax = axes[r][0]
        sns.barplot(data=sizes, x="variant", y="megabytes", hue="variant", palette=palette, ax=ax, legend=False)
        for container in ax.containers:
            ax.bar_label(container, fmt="%.0f", fontsize=8, padding=1)
        ax.set_title(f"{tag}: model size (weights in file or in memory)")
        ax.set_xlabel("")
        ax.set_ylabel("MB")
        ax.tick_params(axis="x", rotation=30)
        ax = axes[r][1]
        gpu = data["peak_gpu_memory_bytes"].notna().any()
        column = "peak_gpu_memory_bytes" if gpu else "peak_rss_bytes"
        shown = data.assign(megabytes=data[column] / _MB)
        sns.barplot(data=shown, x="batch_size", y="megabytes", hue="variant", hue_order=_variant_order(shown),
                    palette=palette, ax=ax)
        ax.set_title(f"{tag}: peak {'GPU memory' if gpu else 'process RSS'} (sequence {shown['sequence_length'].max()})"
                     if shown["sequence_length"].nunique() == 1 else f"{tag}: peak memory")
        ax.set_xlabel("batch size")
        ax.set_ylabel("MB")
        _legend_outside(ax)
    return figure


def _model_sizes(data: pd.DataFrame, artifacts: pd.DataFrame) -> pd.DataFrame:
    sizes = data.groupby("variant", as_index=False)["model_bytes"].first()
    if not artifacts.empty:
        files = artifacts[["variant", "file_bytes"]].rename(columns={"file_bytes": "model_bytes"})
        sizes = pd.concat([sizes, files[~files["variant"].isin(sizes["variant"])]], ignore_index=True)
    sizes["megabytes"] = sizes["model_bytes"] / _MB
    order = {name: i for i, name in enumerate(variant_order(sizes["variant"]))}
    return sizes.sort_values("variant", key=lambda s: s.map(order))


def _tradeoff(summary: pd.DataFrame):
    figure, ax = plt.subplots(figsize=(10, 5))
    smallest = summary[summary["batch_size"] == summary["batch_size"].min()]
    smallest = smallest[smallest["sequence_length"] == smallest["sequence_length"].max()].copy()
    task = "accuracy_relative" in smallest and smallest["accuracy_relative"].notna().any()
    if task:  # the task metric where it was measured: how much of FP32's agreement each variant loses
        smallest["drift"] = (1.0 - smallest["accuracy_relative"]).clip(lower=1e-7)
    else:
        # Max abs difference spans 1e-7 (FP32 rounding) to 1e-1 (INT8): a log axis shows both; the floor keeps
        # an exact match on it.
        smallest["drift"] = smallest["parity_max_abs_diff"].clip(lower=1e-9)
    sns.scatterplot(data=smallest, x="p50_ms", y="drift", hue="variant", hue_order=_variant_order(smallest),
                    style="hardware", s=140, palette=_palette(), ax=ax)
    # Points close in drift get their labels stacked, above and below in turn, so no two labels overlap.
    for index, row in enumerate(smallest.sort_values(["drift", "p50_ms"]).itertuples()):
        ax.annotate(f"{row.variant} ({row.hardware}, {row.model_bytes / _MB:.0f} MB)", (row.p50_ms, row.drift),
                    textcoords="offset points", xytext=(7, 5 if index % 2 == 0 else -11), fontsize=8)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_PLAIN_NUMBERS)
    ax.xaxis.set_minor_formatter(_PLAIN_NUMBERS)
    ax.set_xlabel(f"median latency at batch {int(smallest['batch_size'].min())}, "
                  f"sequence {int(smallest['sequence_length'].max())} (ms, log)")
    if task:
        gate = 1.0 - float(smallest["accuracy_gate"].dropna().iloc[0]) if smallest["accuracy_gate"].notna().any() else None
        if gate:
            ax.axhline(gate, color="0.3", linewidth=1, linestyle=":")
            ax.annotate("accuracy gate", (ax.get_xlim()[0], gate), xytext=(4, 3), textcoords="offset points", fontsize=8)
        ax.set_ylabel("1 − Spearman agreement with PyTorch FP32\n(pairwise sentence similarities on the corpus; log)")
    else:
        ax.set_ylabel("max abs difference from PyTorch FP32\n(last hidden state, padded inputs; log)")
    _legend_outside(ax)
    return figure


def _hardware(summary: pd.DataFrame):
    """Each variant's paired speedup over PyTorch FP32 eager on every machine with results, at the longest
    sequence: what an optimization buys on one machine against another (a ratio measured within each
    machine's own run, so machines of different speeds compare fairly). Error bars: the 95% interval."""
    seq = int(summary["sequence_length"].max())
    data = summary[(summary["sequence_length"] == seq) & (summary["variant"] != BASELINE)
                   & summary["speedup_vs_pytorch"].notna()]
    batches = sorted(data["batch_size"].unique()) or sorted(summary["batch_size"].unique())
    figure, axes = _grid(1, len(batches), height=4.2)
    tags = sorted(summary["hardware"].unique())
    palette = dict(zip(tags, sns.color_palette("Set2", len(tags))))
    for c, batch in enumerate(batches):
        ax = axes[0][c]
        subset = data[data["batch_size"] == batch]
        order = _variant_order(subset)
        width = 0.8 / max(len(tags), 1)
        for h, tag in enumerate(tags):
            rows = subset[subset["hardware"] == tag].set_index("variant").reindex(order)
            x = np.arange(len(order)) - 0.4 + width * (h + 0.5)
            ax.bar(x, rows["speedup_vs_pytorch"], width=width, color=palette[tag], label=tag)
            if "speedup_ci_low" in rows:
                low = (rows["speedup_vs_pytorch"] - rows["speedup_ci_low"]).clip(lower=0)
                high = (rows["speedup_ci_high"] - rows["speedup_vs_pytorch"]).clip(lower=0)
                ax.errorbar(x, rows["speedup_vs_pytorch"], yerr=[low, high], fmt="none", ecolor="black",
                            elinewidth=1, capsize=2)
        ax.axhline(1.0, color="grey", linewidth=1, linestyle="--")
        ax.set_xticks(np.arange(len(order)), order, rotation=45, ha="right")
        ax.set_title(f"batch {batch}, sequence {seq}")
        ax.set_ylabel("speedup over PyTorch FP32 eager (×)" if c == 0 else "")
        ax.legend(fontsize=7, title=None)
    if len(tags) == 1:
        figure.text(0.5, 0.5, f"only '{tags[0]}' has results so far", ha="center", alpha=0.35, fontsize=14)
    return figure
