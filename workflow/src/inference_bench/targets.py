"""The roadmap's performance targets, checked against a summary (numbers the README shows, not asserts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Target:
    """`column` of the row (`variant`, `batch_size`) at sequence 128 must be at least `minimum`."""

    variant: str
    batch_size: int
    column: str
    minimum: float
    label: str
    decimals: int | None = None  # None: the README's usual three significant figures


SEQUENCE_LENGTH = 128
CPU_TARGETS: tuple[Target, ...] = (
    *(Target("ort-fp32", b, "speedup_vs_pytorch", 2.3, f"ort-fp32 ≥ 2.3× pytorch at batch {b}") for b in (1, 16, 32)),
    Target("ort-fp32", 1, "share_of_peak", 0.8, "ort-fp32 ≥ 80% of the FP32 matmul peak at batch 1"),
    Target("ort-int8", 1, "speedup_vs_pytorch", 6.0, "ort-int8 ≥ 6× pytorch at batch 1"),
    Target("ort-int8", 32, "speedup_vs_pytorch", 5.0, "ort-int8 ≥ 5× pytorch at batch 32"),
    Target("ort-int8", 1, "parity_min_token_cosine", 0.999, "ort-int8 min per-token cosine ≥ 0.999", decimals=6),
)


def evaluate_targets(summary: pd.DataFrame, targets: tuple[Target, ...] = CPU_TARGETS) -> list[dict[str, Any]]:
    """One row per target: the measured value (NaN where the summary lacks the row), met, and the gap."""
    results = []
    for target in targets:
        rows = summary[
            (summary["variant"] == target.variant)
            & (summary["batch_size"] == target.batch_size)
            & (summary["sequence_length"] == SEQUENCE_LENGTH)
        ]
        measured = float(rows[target.column].iloc[0]) if not rows.empty else float("nan")
        met = measured >= target.minimum
        gap = f"{measured / target.minimum:.0%} of target" if measured == measured and not met else ""
        shown = f"{measured:.{target.decimals}f}" if target.decimals is not None else None
        results.append({"target": target.label, "measured": measured, "shown": shown, "met": met, "gap": gap})
    return results
