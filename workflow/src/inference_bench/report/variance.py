"""Where the variance of a measurement lies, level by level, and what that says about how to measure.

A comparison (inference_bench.measure.rounds) times each variant in processes, each process in blocks of
calls. Kalibera and Jones ("Rigorous Benchmarking in Reasonable Time", ISMM 2013) estimate, from such nested
data, each level's own share of the variance and choose the repetitions per level from it and from what a
repetition costs. Here, on the logarithms of the latencies (so a component reads as a relative spread):

- `T_i^2`, level by level: the variance of calls within a block (T1), of block means within a process (T2), of
  process means (T3). Each includes what the levels below it leave in a mean: the component of level i alone
  is S_i^2 = T_i^2 - T_{i-1}^2 / n_{i-1}, clipped at zero.
- The paired speedup's own two levels: the log ratio of the baseline's block to the variant's block of the
  same cycle varies between cycles (its cycle component) and between processes (its process component);
  pairing takes out whatever drifted on the host for both.
- Cycles per process (Kalibera and Jones's r, as in two-stage sampling): sqrt(cost of a process / cost of a
  cycle * cycle component / process component), and how many processes then bring the speedup's 95% interval
  within the target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from inference_bench.measure.host import counted_cycles
from inference_bench.variants import BASELINE

Blocks = Sequence[Sequence[Sequence[float]]]  # [process][block][call] latencies in ms

VARIANCE_COLUMNS = ["hardware", "model", "variant", "batch_size", "sequence_length", "processes", "blocks_per_process",
                    "calls_per_block", "call_sd", "block_sd", "process_sd", "pair_cycle_sd", "pair_process_sd",
                    "host_disturbed_share", "process_cost_s", "cycle_cost_s", "cycles_recommended", "processes_for_target"]


def level_variances(blocks: Blocks) -> dict[str, float]:
    """T1^2, T2^2, T3^2 of the log latencies, and the components S1^2..S3^2 (NaN where a level has one member)."""
    logs = [[np.log(np.asarray(block, dtype=np.float64)) for block in process] for process in blocks]
    calls = np.mean([len(block) for process in logs for block in process])
    cycles = np.mean([len(process) for process in logs])
    t1 = _mean_or_nan([block.var(ddof=1) for process in logs for block in process if block.size > 1])
    block_means = [np.array([block.mean() for block in process]) for process in logs]
    t2 = _mean_or_nan([means.var(ddof=1) for means in block_means if means.size > 1])
    process_means = np.array([means.mean() for means in block_means])
    t3 = float(process_means.var(ddof=1)) if process_means.size > 1 else math.nan
    s1 = t1
    s2 = max(t2 - (t1 / calls if not math.isnan(t1) else 0.0), 0.0) if not math.isnan(t2) else math.nan
    s3 = max(t3 - (t2 / cycles if not math.isnan(t2) else 0.0), 0.0) if not math.isnan(t3) else math.nan
    return {"T1": t1, "T2": t2, "T3": t3, "S1": s1, "S2": s2, "S3": s3}


def pair_variances(baseline_medians: Sequence[Sequence[float]], variant_medians: Sequence[Sequence[float]],
                   kept: Sequence[Sequence[bool]] | None = None) -> dict[str, float]:
    """The paired log ratio's cycle component and process component ([process][cycle] block medians), over the
    `kept` cycles only where given (those the host did not disturb: measure.host)."""
    ratios = [np.log(np.asarray(b, dtype=np.float64)) - np.log(np.asarray(v, dtype=np.float64))
              for b, v in zip(baseline_medians, variant_medians)]
    if kept is not None:
        ratios = [r[np.asarray(k, dtype=bool)] for r, k in zip(ratios, kept) if any(k)]
    cycles = np.mean([r.size for r in ratios])
    cycle = _mean_or_nan([r.var(ddof=1) for r in ratios if r.size > 1])
    means = np.array([r.mean() for r in ratios])
    between = float(means.var(ddof=1)) if means.size > 1 else math.nan
    process = max(between - (cycle / cycles if not math.isnan(cycle) else 0.0), 0.0) if not math.isnan(between) \
        else math.nan
    return {"cycle": cycle, "process": process}


def cycles_recommended(process_cost_s: float, cycle_cost_s: float, cycle_var: float, process_var: float,
                       most: int = 100) -> int:
    """Kalibera and Jones's repetitions at the lower level: sqrt(c_upper / c_lower * S_lower^2 / S_upper^2),
    rounded up; `most` where the upper level shows no variance of its own."""
    if any(math.isnan(x) for x in (process_cost_s, cycle_cost_s, cycle_var, process_var)) or cycle_cost_s <= 0:
        return 0
    if process_var <= 0:
        return most
    return max(1, min(most, math.ceil(math.sqrt(process_cost_s / cycle_cost_s * cycle_var / process_var))))


def processes_for_target(cycle_var: float, process_var: float, cycles: int, target: float, most: int = 50) -> int:
    """The fewest processes whose 95% t interval on the mean log ratio lies within +-target (`most` + 1 where
    none up to `most` does)."""
    if math.isnan(cycle_var) or math.isnan(process_var) or cycles < 1:
        return 0
    per_process = process_var + cycle_var / cycles
    for processes in range(2, most + 1):
        half = float(student_t.ppf(0.975, processes - 1)) * math.sqrt(per_process / processes)
        if math.exp(half) - 1.0 <= target:
            return processes
    return most + 1


def variance_table(results: Iterable[dict[str, Any]], target: float) -> pd.DataFrame:
    """One row per timed variant and shape: the spread of each level (as a relative standard deviation), the
    paired speedup's two levels against the baseline timed beside it, and what the design should be."""
    records = [r for r in results if r.get("status", "ok") == "ok" and r.get("block_latencies_ms")]
    baselines = {(r["hardware"], r["model"], r["batch_size"], r["sequence_length"]): r
                 for r in records if r["variant"] == BASELINE}
    rows = []
    for record in records:
        blocks = record["block_latencies_ms"]
        levels = level_variances(blocks)
        costs = record.get("design_costs") or {}
        row = {key: record[key] for key in ("hardware", "model", "variant", "batch_size", "sequence_length")}
        row |= {"processes": len(blocks), "blocks_per_process": float(np.mean([len(p) for p in blocks])),
                "calls_per_block": float(np.mean([len(b) for p in blocks for b in p])),
                "call_sd": _sd(levels["S1"]), "block_sd": _sd(levels["S2"]), "process_sd": _sd(levels["S3"]),
                "process_cost_s": costs.get("load_s", math.nan), "cycle_cost_s": costs.get("cycle_s", math.nan)}
        baseline = baselines.get((record["hardware"], record["model"], record["batch_size"],
                                  record["sequence_length"]))
        pair = {"cycle": math.nan, "process": math.nan}
        same = baseline is not None and baseline is not record and \
            (baseline.get("comparison") or {}).get("id") == (record.get("comparison") or {}).get("id")
        if same and _aligned(baseline["block_latencies_ms"], blocks):
            pair = pair_variances(_medians(baseline["block_latencies_ms"]), _medians(blocks),
                                  counted_cycles(baseline.get("host"), blocks))
        row["host_disturbed_share"] = (record.get("host") or {}).get("disturbed_share")
        cycles = cycles_recommended(row["process_cost_s"], row["cycle_cost_s"], pair["cycle"], pair["process"])
        row |= {"pair_cycle_sd": _sd(pair["cycle"]), "pair_process_sd": _sd(pair["process"]),
                "cycles_recommended": cycles or None,
                "processes_for_target": processes_for_target(pair["cycle"], pair["process"], cycles, target) or None}
        rows.append(row)
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)


def _aligned(baseline: Blocks, blocks: Blocks) -> bool:
    return len(baseline) == len(blocks) and all(len(b) == len(v) for b, v in zip(baseline, blocks))


def _medians(blocks: Blocks) -> list[list[float]]:
    return [[float(np.median(block)) for block in process] for process in blocks]


def _sd(variance: float) -> float:
    """A variance of logarithms as the relative standard deviation it stands for."""
    return math.nan if math.isnan(variance) else math.sqrt(variance)


def _mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def variance_markdown(table: pd.DataFrame, machine: str) -> str:
    """The variance table as the README's "How it measures" shows it: one row per variant and shape."""
    if table.empty:
        return "No comparison with blocks has been measured on the reference machine yet.\n"
    rows = []
    for row in table.itertuples():
        rows.append([row.variant, str(row.batch_size), str(row.sequence_length),
                     f"{row.processes} × {row.blocks_per_process:.0f} × {row.calls_per_block:.0f}",
                     _percent(row.call_sd), _percent(row.block_sd), _percent(row.process_sd),
                     _percent(row.pair_cycle_sd), _percent(row.pair_process_sd),
                     _share(getattr(row, "host_disturbed_share", None)), _count(row.cycles_recommended), _count(row.processes_for_target)])
    header = ["variant", "batch", "seq", "processes × blocks × calls", "calls", "blocks", "processes",
              "paired: cycles", "paired: processes", "host disturbed", "cycles (K&J)", "processes for the target"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return (f"Measured on {machine}, in the default run whose results the README shows. Each level's own spread is a "
            f"relative standard deviation (of log latencies); \"paired\" is the spread of the log ratio of the "
            f"baseline's block to the variant's in the same cycle (the baseline's own row has none), over the cycles the "
            f"speedup counts (every cycle unless `benchmark.undisturbed_only`); \"host disturbed\" is the share of the "
            f"comparison's cycles a host probe saw disturbed.\n\n"
            + "\n".join(lines) + "\n")


def _percent(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"


def _share(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.0f}%"


def _count(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(int(value))
