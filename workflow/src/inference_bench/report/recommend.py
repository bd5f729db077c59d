"""What to deploy: per machine, model, batch size and sequence length, the fastest variant that keeps the
model's accuracy and meets the user's latency objective, its ties, and its cost per million sequences.

The rules, in order:
1. A row is a candidate when it was measured (`status` ok), its task accuracy relative to PyTorch FP32 is at
   least `min_accuracy_relative` (the accuracy gate by default), and its p99 per call is within `max_p99_ms`
   (when set). PyTorch FP32 eager is the reference the others are judged against, so it always passes the gate.
2. Among candidates, the fastest is the one with the largest paired speedup over PyTorch FP32 eager. A candidate
   is a tie when the timing cannot tell it from the fastest: where both were timed in the same processes' cycles
   (the summary's `process_speedups`), when the 95% interval of the fastest's speedup over it, process by process,
   reaches 1; otherwise when its speedup interval reaches the fastest one's. The first test is the sharper: both
   speedups share the PyTorch blocks they were divided by, so what moved PyTorch moves both, and their intervals
   can overlap while every process ran one faster than the other. The tie group is ordered by the smaller model
   file, then the lower peak memory, and the first is the choice; the fastest point estimate is named beside it
   when it is not the choice.
3. Where no variant's accuracy was judged (a model without a tokenizer, so no accuracy stage), the block says
   so and recommends nothing: speed alone is not a reason to deploy a variant that may not do the model's job.

Cost per million sequences is the machine's price per hour (`hardware_tags.<tag>.price_per_hour`, the user's
own figure) over the sequences an hour at the row's throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from inference_bench.measure.statistics import Estimate, paired_block_speedup
from inference_bench.report.tables import format_number
from inference_bench.variants import BASELINE

SHAPE = ["hardware", "model", "batch_size", "sequence_length"]
#: The accuracy gate when a summary does not record one (config `accuracy.min_relative`'s default).
DEFAULT_GATE = 0.99


@dataclass(frozen=True)
class Constraints:
    """What the user asks of a deployment (config `recommend`)."""

    max_p99_ms: float | None = None
    min_accuracy_relative: float | None = None  # None: each summary's own accuracy gate

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> "Constraints":
        section = section or {}
        return cls(section.get("max_p99_ms"), section.get("min_accuracy_relative"))


def cost_per_million(throughput_seq_per_s: float, price_per_hour: float | None) -> float:
    """Price of a million sequences at this throughput: price an hour / sequences an hour x 10^6."""
    if price_per_hour is None or not throughput_seq_per_s or pd.isna(throughput_seq_per_s):
        return math.nan
    return price_per_hour / (throughput_seq_per_s * 3600.0) * 1e6


def with_costs(summary: pd.DataFrame, prices: dict[str, float | None]) -> pd.DataFrame:
    """The summary with `cost_per_million` from each row's machine's price (NaN where none is set)."""
    costs = [cost_per_million(row.throughput_seq_per_s, prices.get(row.hardware))
             for row in summary.itertuples()]
    return summary.assign(cost_per_million=costs)


def _gate(rows: pd.DataFrame, constraints: Constraints) -> float:
    if constraints.min_accuracy_relative is not None:
        return constraints.min_accuracy_relative
    gates = rows["accuracy_gate"].dropna() if "accuracy_gate" in rows else pd.Series(dtype=float)
    return float(gates.iloc[0]) if not gates.empty else DEFAULT_GATE


def _judged(rows: pd.DataFrame) -> bool:
    """Whether the accuracy stage judged any variant other than the reference."""
    others = rows[rows["variant"] != BASELINE]
    return "accuracy_relative" in rows and others["accuracy_relative"].notna().any()


def _peak_memory(row: pd.Series) -> float:
    gpu = row.get("peak_gpu_memory_bytes")
    return float(gpu) if gpu is not None and not pd.isna(gpu) else float(row.get("peak_rss_bytes") or math.nan)


def process_speedups(row: pd.Series) -> list[float] | None:
    """A row's per-process paired speedups (report.aggregate.process_speedups), None where it has none."""
    text = row.get("process_speedups")
    # speedup_paired reads back from a CSV as a bool, a numpy bool or, beside empty cells, the text "True".
    if not isinstance(text, str) or not text.strip() or str(row.get("speedup_paired")) != "True":
        return None
    try:
        values = [float(value) for value in text.split()]
    except ValueError:  # a cell edited by hand: fall back to the intervals, as for results without the column
        return None
    return values if all(math.isfinite(value) and value > 0 for value in values) else None


def side_by_side(faster: pd.Series, other: pd.Series) -> Estimate | None:
    """How many times faster `faster` ran than `other`, from their speedups process by process (each over the
    PyTorch blocks of the same cycles), with a t interval over processes; None where the two rows were not timed
    in the same processes (or either has a single one)."""
    mine, theirs = process_speedups(faster), process_speedups(other)
    if mine is None or theirs is None or len(mine) != len(theirs) or len(mine) < 2:
        return None
    if str(faster.get("comparison_id")) != str(other.get("comparison_id")):
        return None  # timed in two comparisons (a result copied in from another run): their processes differ
    # paired_block_speedup(a, b) is exp(mean over processes of log(a / b)): one "block" per process, a and b
    # the two variants' speedups over the same PyTorch blocks, so a / b is `other`'s latency over `faster`'s.
    return paired_block_speedup([[value] for value in mine], [[value] for value in theirs])


def _tied(fastest: pd.Series, candidate: pd.Series, fastest_low: float) -> tuple[bool, bool]:
    """Whether the timing cannot tell `candidate` from `fastest`, and whether that was decided side by side."""
    if candidate["variant"] == fastest["variant"]:
        return True, True
    direct = side_by_side(fastest, candidate)
    if direct is not None:
        return direct.low <= 1.0, True
    high = candidate.get("speedup_ci_high")
    high = candidate["speedup_vs_pytorch"] if pd.isna(high) else high
    return bool((1.0 if pd.isna(high) else high) >= fastest_low), False


def recommend_shape(rows: pd.DataFrame, constraints: Constraints) -> dict[str, Any]:
    """The recommendation for one (machine, model, batch, sequence): see the module's docstring."""
    first = rows.iloc[0]
    out: dict[str, Any] = {key: first[key] for key in SHAPE}
    out.update(choice=None, speedup=math.nan, speedup_low=math.nan, speedup_high=math.nan, p99_ms=math.nan,
               throughput_seq_per_s=math.nan, accuracy_relative=math.nan, cost_per_million=math.nan, ties=[],
               fastest=None, excluded={}, ties_side_by_side=None, reason="")
    measured = rows[rows["status"] == "ok"]
    if measured.empty:
        out["reason"] = "nothing was measured at this shape"
        return out
    if not _judged(measured):
        out["reason"] = ("accuracy cannot be judged (no tokenizer, so no accuracy stage): no variant is "
                         "recommended on speed alone")
        return out
    gate = _gate(measured, constraints)
    excluded: dict[str, str] = {}
    for row in measured.itertuples():
        relative = 1.0 if row.variant == BASELINE else row.accuracy_relative
        if pd.isna(relative):
            excluded[row.variant] = "accuracy not judged"
        elif relative < gate:
            excluded[row.variant] = f"accuracy {relative:.4f} of FP32, below {gate:g}"
        elif constraints.max_p99_ms is not None and row.p99_ms > constraints.max_p99_ms:
            excluded[row.variant] = f"p99 {format_number(row.p99_ms)} ms, over {format_number(constraints.max_p99_ms)} ms"
    out["excluded"] = excluded
    candidates = measured[~measured["variant"].isin(excluded)]
    if candidates.empty:
        out["reason"] = "no variant meets " + (
            f"the latency objective of {format_number(constraints.max_p99_ms)} ms" if constraints.max_p99_ms
            else "the accuracy gate")
        return out
    speedups = candidates["speedup_vs_pytorch"].fillna(1.0)
    fastest = candidates.loc[speedups.idxmax()]
    low = fastest["speedup_ci_low"] if not pd.isna(fastest.get("speedup_ci_low")) else fastest["speedup_vs_pytorch"]
    verdicts = [_tied(fastest, candidate, low) for _, candidate in candidates.iterrows()]
    tied = candidates[[is_tied for is_tied, _ in verdicts]]
    tied = tied.assign(_memory=lambda frame: frame.apply(_peak_memory, axis=1))
    tied = tied.sort_values(["model_bytes", "_memory", "variant"], na_position="last")
    choice = tied.iloc[0]
    out.update(
        choice=choice["variant"], speedup=choice["speedup_vs_pytorch"], speedup_low=choice.get("speedup_ci_low"),
        speedup_high=choice.get("speedup_ci_high"), p99_ms=choice["p99_ms"],
        throughput_seq_per_s=choice["throughput_seq_per_s"],
        accuracy_relative=1.0 if choice["variant"] == BASELINE else choice["accuracy_relative"],
        cost_per_million=choice.get("cost_per_million", math.nan),
        ties=[variant for variant in tied["variant"] if variant != choice["variant"]],
        fastest=fastest["variant"] if fastest["variant"] != choice["variant"] else None,
        ties_side_by_side=all(by_side for is_tied, by_side in verdicts if is_tied),
    )
    faster_but_out = [f"{variant} ({why})" for variant, why in excluded.items()
                      if measured.set_index("variant").loc[variant, "speedup_vs_pytorch"] > choice["speedup_vs_pytorch"]]
    if faster_but_out:
        out["reason"] = "faster but excluded: " + ", ".join(faster_but_out)
    return out


def recommend(summary: pd.DataFrame, constraints: Constraints = Constraints(),
              prices: dict[str, float | None] | None = None) -> pd.DataFrame:
    """One recommendation per (machine, model, batch, sequence) of `summary` (one or many summaries' rows)."""
    if summary.empty:
        return pd.DataFrame(columns=[*SHAPE, "choice"])
    priced = with_costs(summary, prices or {})
    rows = [recommend_shape(group, constraints) for _, group in priced.groupby(SHAPE, sort=True)]
    return pd.DataFrame(rows)


def largest_batch(recommendations: pd.DataFrame, constraints: Constraints) -> pd.DataFrame:
    """Per machine, model and sequence length: the largest batch whose recommended variant meets the latency
    objective (every recommendation already does), with its throughput; the serving trade-off of batching for
    throughput until p99 breaks the objective."""
    chosen = recommendations.dropna(subset=["choice"])
    if chosen.empty:
        return pd.DataFrame(columns=["hardware", "model", "sequence_length", "batch_size", "choice"])
    best = chosen.sort_values("batch_size").groupby(["hardware", "model", "sequence_length"]).tail(1)
    return best[["hardware", "model", "sequence_length", "batch_size", "choice", "p99_ms", "throughput_seq_per_s",
                 "cost_per_million"]].reset_index(drop=True)


def cheapest(recommendations: pd.DataFrame) -> pd.DataFrame:
    """Per model, batch and sequence: the machine-variant pair with the lowest cost per million sequences among
    the recommendations (each meets the gate and the objective), where two or more machines have a price."""
    priced = recommendations.dropna(subset=["choice", "cost_per_million"])
    rows = []
    for _, group in priced.groupby(["model", "batch_size", "sequence_length"]):
        if group["hardware"].nunique() >= 2:
            rows.append(group.loc[group["cost_per_million"].idxmin()])
    return pd.DataFrame(rows).reset_index(drop=True)


def recommendation_lines(recommendations: pd.DataFrame) -> list[str]:
    """One line per shape, as the README's "What to deploy" block and `snakemake recommend` print it; one line
    for all of them when none has a recommendation, for the same reason."""
    reasons = set(recommendations["reason"]) if "reason" in recommendations else set()
    if len(recommendations) > 1 and recommendations["choice"].isna().all() and len(reasons) == 1:
        return [f"every shape: no recommendation: {reasons.pop()}"]
    lines = []
    for row in recommendations.itertuples():
        shape = f"batch {row.batch_size}, sequence {row.sequence_length}"
        if row.choice is None or (isinstance(row.choice, float) and math.isnan(row.choice)):
            lines.append(f"{shape}: no recommendation: {row.reason}")
            continue
        interval = ("" if pd.isna(row.speedup_low) else f" [{row.speedup_low:.2f}–{row.speedup_high:.2f}]")
        text = (f"{shape}: **{row.choice}**, {row.speedup:.2f}×{interval} over PyTorch FP32, p99 "
                f"{format_number(row.p99_ms)} ms, accuracy {row.accuracy_relative:.4f} of FP32")
        if not pd.isna(row.cost_per_million):
            text += f", {row.cost_per_million:.3g} per million sequences"
        if row.ties:
            why = ("timed side by side, the ratio's 95% interval reaches 1" if getattr(row, "ties_side_by_side", False)
                   else "intervals overlap")
            text += f"; tied with {', '.join(row.ties)} ({why}; smaller file, then less memory, first)"
        if row.fastest:
            text += f"; {row.fastest} is faster on its point estimate but within the interval"
        if row.reason:
            text += f"; {row.reason}"
        lines.append(text)
    return lines
