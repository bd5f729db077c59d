"""Medians and speedups from interleaved rounds, with bootstrap confidence intervals.

A variant is timed in R rounds (a fresh process each), and each round holds many per-iteration latencies.
Its latency is the median of its round medians; its 95% interval comes from a two-level bootstrap: resample
the rounds with replacement, and within each drawn round resample its iterations, then take the median of
the resampled round medians. Between-round spread (the host drifting, a neighbour) and within-round spread
both widen the interval, which a bootstrap over pooled iterations would hide.

A speedup over the baseline is paired: in each round the baseline and the variant ran back to back, so the
ratio of their round medians cancels what hit both; the speedup is the median of those per-round ratios and
its interval resamples the same rounds for both. Rounds that were not measured together (results of two
different comparisons) are resampled independently instead, and said to be unpaired.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

Rounds = Sequence[Sequence[float]]

CONFIDENCE = 0.95
REPLICATES = 1000
#: Iterations resampled per round: beyond this, a round's median is drawn from a random subset of this size
#: per replicate (its sampling spread is already negligible there, and the cost stays bounded).
MAX_RESAMPLED = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def as_dict(self, prefix: str) -> dict[str, float]:
        return {prefix: self.value, f"{prefix}_ci_low": self.low, f"{prefix}_ci_high": self.high}


def round_medians(rounds: Rounds) -> np.ndarray:
    _check(rounds)
    return np.array([np.median(np.asarray(r, dtype=np.float64)) for r in rounds])


def median_of_round_medians(rounds: Rounds) -> float:
    return float(np.median(round_medians(rounds)))


def median_interval(rounds: Rounds, seed: int = 0, replicates: int = REPLICATES) -> Estimate:
    """Median of round medians, with a two-level bootstrap interval."""
    rng = np.random.default_rng(seed)
    medians = _resampled_round_medians(rounds, replicates, rng)
    picks = rng.integers(0, len(rounds), size=(replicates, len(rounds)))
    statistic = np.median(np.take_along_axis(medians, picks, axis=1), axis=1)
    return Estimate(median_of_round_medians(rounds), *_percentile_interval(statistic))


def speedup_interval(baseline: Rounds, variant: Rounds, paired: bool, seed: int = 0,
                     replicates: int = REPLICATES) -> Estimate:
    """How many times faster `variant` ran than `baseline`: paired, the median of per-round ratios; unpaired,
    the ratio of the medians of round medians. The interval resamples as `median_interval` does, drawing the
    same rounds for both when paired."""
    if paired and len(baseline) != len(variant):
        raise ValueError(f"paired rounds need as many baseline rounds as variant rounds ({len(baseline)} vs "
                         f"{len(variant)})")
    rng = np.random.default_rng(seed)
    base, var = _resampled_round_medians(baseline, replicates, rng), _resampled_round_medians(variant, replicates, rng)
    if paired:
        value = float(np.median(round_medians(baseline) / round_medians(variant)))
        picks = rng.integers(0, len(baseline), size=(replicates, len(baseline)))
        ratios = np.take_along_axis(base, picks, axis=1) / np.take_along_axis(var, picks, axis=1)
        statistic = np.median(ratios, axis=1)
    else:
        value = median_of_round_medians(baseline) / median_of_round_medians(variant)
        base_picks = rng.integers(0, len(baseline), size=(replicates, len(baseline)))
        var_picks = rng.integers(0, len(variant), size=(replicates, len(variant)))
        statistic = (np.median(np.take_along_axis(base, base_picks, axis=1), axis=1)
                     / np.median(np.take_along_axis(var, var_picks, axis=1), axis=1))
    return Estimate(value, *_percentile_interval(statistic))


NO_MEASURABLE_DIFFERENCE = "no measurable difference"


def speedup_verdict(low: float, high: float) -> str:
    """'faster' or 'slower' when the whole interval is on one side of 1.0, else no measurable difference."""
    if low > 1.0:
        return "faster"
    if high < 1.0:
        return "slower"
    return NO_MEASURABLE_DIFFERENCE


def _check(rounds: Rounds) -> None:
    if len(rounds) == 0 or any(len(r) == 0 for r in rounds):
        raise ValueError("every round needs at least one latency")


def _resampled_round_medians(rounds: Rounds, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """replicates x rounds: each round's median after resampling its iterations with replacement."""
    _check(rounds)
    medians = np.empty((replicates, len(rounds)))
    for column, samples in enumerate(rounds):
        values = np.asarray(samples, dtype=np.float64)
        draws = rng.integers(0, values.size, size=(replicates, min(values.size, MAX_RESAMPLED)))
        medians[:, column] = np.median(values[draws], axis=1)
    return medians


def _percentile_interval(statistic: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(statistic, [tail, 100 - tail])
    return float(low), float(high)
