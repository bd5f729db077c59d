"""Medians and speedups from interleaved rounds, with 95% confidence intervals.

A variant is timed in R rounds, each a fresh process, and each round holds many per-iteration latencies. The
round is the replicate: iterations within one process share its memory layout, its clock and its neighbours,
so they are neither independent nor a sample of what a rerun would see (Kalibera and Jones, "Rigorous
Benchmarking in Reasonable Time", ISMM 2013, find the variance between processes dominates). So:

- A latency is the median of its round medians, and its interval is Student's t over the logarithms of the
  round medians (R - 1 degrees of freedom): with 3 rounds the half-width is 4.3 standard errors, as wide as
  three numbers honestly allow. A bootstrap over 3 round medians cannot reach past their range, which holds
  a new run's median only about 4 times in 5; two back-to-back default runs disagreed beyond such intervals.
- A speedup over the baseline is paired: in each round the baseline and the variant ran back to back, so the
  ratio of their round medians cancels what hit both. The speedup is the geometric mean of those per-round
  ratios, with a t interval on their logarithms. Rounds not measured together (results of two comparisons)
  give the ratio of the medians, with Welch's t interval on the difference of the log round medians.
- With a single round there is no between-round spread to measure: the interval falls back to a bootstrap
  over that round's iterations, which says how well the round pinned its own median and nothing about a rerun.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

Rounds = Sequence[Sequence[float]]

CONFIDENCE = 0.95
REPLICATES = 1000
#: One-round fallback only. Iterations resampled per round: beyond this, a round's median is drawn from a random
#: subset of this size per replicate (its sampling spread is already negligible there, and the cost bounded).
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
    """Median of round medians, with a t interval over the log round medians (one round: a bootstrap)."""
    value = median_of_round_medians(rounds)
    logs = np.log(round_medians(rounds))
    if logs.size == 1:
        rng = np.random.default_rng(seed)
        return Estimate(value, *_percentile_interval(_resampled_round_medians(rounds, replicates, rng)[:, 0]))
    low, high = _t_interval(logs.mean(), _standard_error(logs), logs.size - 1)
    # The median and the mean of the logs differ when one round strays; the interval keeps the reported median.
    return Estimate(value, min(low, value), max(high, value))


def speedup_interval(baseline: Rounds, variant: Rounds, paired: bool, seed: int = 0,
                     replicates: int = REPLICATES) -> Estimate:
    """How many times faster `variant` ran than `baseline`: paired, the geometric mean of per-round ratios
    with a t interval; unpaired, the ratio of the medians of round medians with Welch's interval."""
    if paired and len(baseline) != len(variant):
        raise ValueError(f"paired rounds need as many baseline rounds as variant rounds ({len(baseline)} vs "
                         f"{len(variant)})")
    base_logs, var_logs = np.log(round_medians(baseline)), np.log(round_medians(variant))
    if paired:
        log_ratios = base_logs - var_logs
        value = float(np.exp(log_ratios.mean()))
        if log_ratios.size == 1:
            return Estimate(value, *_bootstrap_ratio(baseline, variant, seed, replicates))
        return Estimate(value, *_t_interval(log_ratios.mean(), _standard_error(log_ratios), log_ratios.size - 1))
    value = median_of_round_medians(baseline) / median_of_round_medians(variant)
    if base_logs.size == 1 or var_logs.size == 1:
        return Estimate(value, *_bootstrap_ratio(baseline, variant, seed, replicates))
    base_var, var_var = _standard_error(base_logs) ** 2, _standard_error(var_logs) ** 2
    spread = float(np.sqrt(base_var + var_var))
    # Welch-Satterthwaite degrees of freedom (both spreads zero: nothing to weigh, the smaller count's).
    dof = ((base_var + var_var) ** 2 / (base_var**2 / (base_logs.size - 1) + var_var**2 / (var_logs.size - 1))
           if spread > 0 else float(min(base_logs.size, var_logs.size) - 1))
    low, high = _t_interval(base_logs.mean() - var_logs.mean(), spread, dof)
    return Estimate(value, min(low, value), max(high, value))


def paired_block_speedup(baseline: Sequence[Sequence[float]], variant: Sequence[Sequence[float]],
                         kept: Sequence[Sequence[bool]] | None = None) -> Estimate:
    """How many times faster `variant` ran than `baseline` from block medians timed side by side:
    [process][cycle], the blocks of one cycle back to back (measure.rounds). Per process, the mean over cycles of
    log(baseline / variant): what drifted on the host between cycles cancels in each ratio. The speedup is the
    exponential of the mean over processes, with a t interval over processes (P - 1 degrees of freedom): a
    process's layout and placement stay with it for all its cycles, so the process is the replicate. With a
    single process, the interval is over its cycles and says nothing about the next process.
    `kept` ([process][cycle], measure.host.kept_cycles) counts only the cycles timed while the host was
    undisturbed; a process with none of them is left out."""
    if len(baseline) != len(variant) or any(len(b) != len(v) for b, v in zip(baseline, variant)):
        raise ValueError("paired blocks need the same processes and cycles on both sides")
    if len(baseline) == 0 or any(len(b) == 0 for b in baseline):
        raise ValueError("every process needs at least one block")
    ratios = [np.log(np.asarray(b, dtype=np.float64)) - np.log(np.asarray(v, dtype=np.float64))
              for b, v in zip(baseline, variant)]
    if kept is not None:
        if len(kept) != len(ratios) or any(len(k) != r.size for k, r in zip(kept, ratios)):
            raise ValueError("the kept cycles need the same processes and cycles as the blocks")
        ratios = [r[np.asarray(k, dtype=bool)] for r, k in zip(ratios, kept) if any(k)]
        if not ratios:
            raise ValueError("no cycle is kept")
    replicates = np.array([r.mean() for r in ratios]) if len(ratios) > 1 else ratios[0]
    centre = float(replicates.mean())
    if replicates.size == 1:
        return Estimate(float(np.exp(centre)), 0.0, float("inf"))  # one ratio: no spread to measure
    return Estimate(float(np.exp(centre)), *_t_interval(centre, _standard_error(replicates), replicates.size - 1))


def relative_half_width(estimate: Estimate) -> float:
    """How far the interval reaches from its estimate, as a share of it (the larger side): 0.03 is +-3%."""
    if estimate.low <= 0:
        return float("inf")
    return max(estimate.high / estimate.value, estimate.value / estimate.low) - 1.0


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


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(values.size))


def _t_interval(centre: float, standard_error: float, dof: float) -> tuple[float, float]:
    """The interval for exp(centre) from a mean of logarithms, its standard error and degrees of freedom."""
    half_width = float(student_t.ppf(1 - (1 - CONFIDENCE) / 2, dof)) * standard_error
    return float(np.exp(centre - half_width)), float(np.exp(centre + half_width))


def _bootstrap_ratio(baseline: Rounds, variant: Rounds, seed: int, replicates: int) -> tuple[float, float]:
    """One round on a side: resample iterations within rounds only (no between-round spread to measure)."""
    rng = np.random.default_rng(seed)
    base = np.median(_resampled_round_medians(baseline, replicates, rng), axis=1)
    var = np.median(_resampled_round_medians(variant, replicates, rng), axis=1)
    return _percentile_interval(base / var)


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
