"""Performance targets (config `targets:`), checked against a summary: numbers the README shows, not asserts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal

import pandas as pd

from inference_bench.hardware import AUTO_TEMPLATE, is_machine_tag
from inference_bench.variants import BASELINE, precision_of

Metric = Literal["speedup_vs_pytorch", "share_of_bound", "share_of_peak", "parity_min_token_cosine"]
#: Metrics that are shares, printed as percentages.
_SHARES = ("share_of_bound", "share_of_peak")


@dataclass(frozen=True)
class Target:
    """`metric` of the row (`hardware`, `variant`, `batch_size`, `sequence_length`) must be at least `minimum`."""

    hardware: str
    variant: str
    batch_size: int
    sequence_length: int
    metric: Metric
    minimum: float

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> "Target":
        return cls(**entry)

    @property
    def label(self) -> str:
        what = {
            "speedup_vs_pytorch": f"≥ {self.minimum:g}× {BASELINE}",
            "share_of_bound": f"≥ {self.minimum:.0%} of its roofline bound",
            "share_of_peak": f"≥ {self.minimum:.0%} of the {(precision_of(self.variant) or '').upper()} matmul peak",
            "parity_min_token_cosine": f"min per-token cosine ≥ {self.minimum:g}",
        }[self.metric]
        return f"{self.variant} {what} at batch {self.batch_size}, sequence {self.sequence_length}"

    def applies_to(self, tag: str) -> bool:
        """A target of the `cpu` tag holds for every machine measured with its settings (`hardware: auto`)."""
        return tag == self.hardware or (self.hardware == AUTO_TEMPLATE and is_machine_tag(tag))

    def shown(self, measured: float) -> str | None:
        """How the measured value is printed; None: the table's usual three significant figures."""
        if self.metric == "parity_min_token_cosine":
            return f"{measured:.6f}"
        return f"{measured:.0%}" if self.metric in _SHARES else None


def evaluate_targets(summary: pd.DataFrame, targets: Iterable[Target]) -> list[dict[str, Any]]:
    """One row per target of the summary's hardware tags: the measured value (NaN where the summary lacks
    the row), met, and the gap."""
    tags = set(summary["hardware"])
    results = []
    for target in targets:
        matching = [tag for tag in tags if target.applies_to(tag)]
        if not matching:
            continue
        rows = summary[
            summary["hardware"].isin(matching)
            & (summary["variant"] == target.variant)
            & (summary["batch_size"] == target.batch_size)
            & (summary["sequence_length"] == target.sequence_length)
        ]
        if target.metric not in rows:  # a summary from before the metric existed
            rows = rows.iloc[0:0]
        measured = float(rows[target.metric].iloc[0]) if not rows.empty else math.nan
        low, high = _interval(rows.iloc[0], target.metric) if not rows.empty else (math.nan, math.nan)
        met = measured >= target.minimum
        # Truncated, not rounded: 5.97 against 6 is "99.5% of target", never "100%" beside a "no".
        gap = f"{math.floor(1000 * measured / target.minimum) / 10:g}% of target" if not math.isnan(
            measured) and not met else ""
        results.append({"target": target.label, "measured": measured, "shown": target.shown(measured),
                        "met": met, "gap": gap, "low": low, "high": high,
                        "undecided": bool(low < target.minimum <= high)})
    return results


def _interval(row: pd.Series, metric: str) -> tuple[float, float]:
    """The 95% interval of a row's metric, where the summary has one (NaN, NaN otherwise): the speedup's own,
    or, for a share (of the bound or the peak), the latency's turned around (slower is a smaller share)."""
    def number(key: str) -> float:
        value = pd.to_numeric(row.get(key), errors="coerce")
        return math.nan if value is None or pd.isna(value) else float(value)

    if metric == "speedup_vs_pytorch":
        return number("speedup_ci_low"), number("speedup_ci_high")
    if metric in _SHARES:
        share, p50 = number(metric), number("p50_ms")
        return share * p50 / number("p50_ci_high_ms"), share * p50 / number("p50_ci_low_ms")
    return math.nan, math.nan
