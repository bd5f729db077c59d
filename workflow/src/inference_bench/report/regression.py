"""Has this checkout got slower? This run's summaries against the committed ones of the same machine.

Row by row (tag, model, variant, batch, sequence), two verdicts:

- **paired** (decides by default, `regression.decide_on`): the variant's speedup over PyTorch, each timed beside
  its baseline, fresh against committed: slower when the fresh interval lies wholly below the committed one and
  the speedup fell by more than `min_speedup_change`; faster in the mirror case. The host's drift between two
  runs hours apart (seen: up to 27% on one row) falls on the variant and its baseline alike and cancels.
- **absolute**: the median latencies through their intervals, slower when the fresh interval lies wholly above
  the committed one and the median moved by more than `min_change`. The baseline's own row has no pairing: its
  absolute verdict decides for it.

A failed row where a number stood is a regression too. Results of another machine are refused: the comparison
would measure the machines, not the code.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from inference_bench import layout
from inference_bench.errors import PipelineError
from inference_bench.report.tables import latency_text, markdown_table
from inference_bench.variants import BASELINE

KEYS = ["hardware", "model", "variant", "batch_size", "sequence_length"]
SLOWER, FASTER, SAME = "slower", "faster", "same within noise"
FAILED = "failed (a number before)"
#: The change below which a row is never called slower or faster (the config's `regression.min_change`): default
#: runs hours apart on a 2-core VM had disjoint intervals on a few rows, up to 27% apart (the host moves).
DEFAULT_MIN_CHANGE = 0.15
#: The paired verdict's floor (`regression.min_speedup_change`). A comparison's interval covers what varied in its
#: two minutes, not the host's state over the next hour, so two runs of the same code can have disjoint speedup
#: intervals: seven default runs on the reference VM (Zen 5 EPYC, 2 cores, 2026-11-29, quiet, code that changed
#: only how the comparisons stop) taken two by two as committed and fresh (42 ordered pairs) called a row slower
#: in 17 pairs at a floor of 5%, in 5 at 8%, and in none at 10% (the largest such fall: 9.5%).
DEFAULT_MIN_SPEEDUP_CHANGE = 0.10
DECISIONS = ("paired", "absolute")


class DifferentMachineError(PipelineError, ValueError):
    """The committed results came from another machine than this run's."""


class NothingCommittedError(PipelineError, FileNotFoundError):
    """There is no committed summary to compare with."""


class RegressionError(PipelineError, RuntimeError):
    """A row got slower beyond noise."""


@dataclass(frozen=True)
class Committed:
    summary: pd.DataFrame
    environment: dict[str, Any]


def committed_file(path: str | Path, ref: str = "HEAD") -> str:
    """A file's text as committed at `ref`."""
    relative = Path(path).resolve().relative_to(Path.cwd().resolve()) if Path(path).is_absolute() else Path(path)
    try:
        shown = subprocess.run(["git", "show", f"{ref}:./{relative.as_posix()}"], capture_output=True, text=True,
                               check=False, timeout=30)
    except OSError as error:  # no git at all
        raise NothingCommittedError(f"cannot read {path} at {ref}: {error}") from error
    if shown.returncode != 0:
        raise NothingCommittedError(
            f"no committed {path} at {ref} to compare with ({shown.stderr.strip().splitlines()[-1] if shown.stderr.strip() else 'git failed'}); "
            f"commit a run's results first, or set regression.against to a commit that has them"
        )
    return shown.stdout


def read_committed(summary_path: str | Path, ref: str = "HEAD") -> Committed:
    import json

    summary = pd.read_csv(io.StringIO(committed_file(summary_path, ref)))
    environment = json.loads(committed_file(layout.beside_summary(summary_path, layout.ENVIRONMENT), ref))
    return Committed(summary, environment)


def check_same_machine(committed: dict[str, Any], fresh: dict[str, Any], what: str) -> None:
    old, new = (committed.get("fingerprint") or {}).get("id"), (fresh.get("fingerprint") or {}).get("id")
    if not old or not new:
        raise DifferentMachineError(f"{what}: the committed or the fresh results record no machine fingerprint, so "
                                    f"they cannot be shown to come from one machine; measure both with this version")
    if old != new:
        raise DifferentMachineError(
            f"{what}: the committed results were measured on machine {old}, these on {new}: refusing to compare "
            f"(the difference would be the machines', not the code's)"
        )


def _interval(frame: pd.DataFrame, side: str) -> pd.Series:
    column = f"p50_ci_{side}_ms"
    values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
    return values.fillna(frame["p50_ms"])


def compare_summaries(committed: pd.DataFrame, fresh: pd.DataFrame, min_change: float = DEFAULT_MIN_CHANGE,
                      decide_on: str = "paired",
                      min_speedup_change: float = DEFAULT_MIN_SPEEDUP_CHANGE) -> pd.DataFrame:
    """One row per key present in either summary: both medians and both speedups with their intervals, the
    absolute and the paired verdict, and the verdict that decides (`decide_on`; the absolute one where there is
    no paired one: the baseline's row, or summaries without speedups)."""
    if decide_on not in DECISIONS:
        raise ValueError(f"decide_on must be one of {DECISIONS}, got {decide_on!r}")
    left = committed.assign(low=_interval(committed, "low"), high=_interval(committed, "high"), **_speedups(committed))
    right = fresh.assign(low=_interval(fresh, "low"), high=_interval(fresh, "high"), **_speedups(fresh))
    columns = [*KEYS, "status", "p50_ms", "low", "high", "speedup", "speedup_low", "speedup_high"]
    merged = left[columns].merge(right[columns], on=KEYS, how="outer", suffixes=("_committed", "_fresh"))
    merged["change"] = merged["p50_ms_fresh"] / merged["p50_ms_committed"] - 1.0
    merged["speedup_change"] = merged["speedup_fresh"] / merged["speedup_committed"] - 1.0
    rows = merged.to_dict("records")
    merged["absolute_verdict"] = [_verdict(row, min_change) for row in rows]
    merged["paired_verdict"] = [_paired_verdict(row, min_speedup_change) for row in rows]
    use_paired = (decide_on == "paired") & merged["paired_verdict"].notna()
    merged["verdict"] = merged["paired_verdict"].where(use_paired, merged["absolute_verdict"])
    merged["decided_by"] = np.where(use_paired, "paired", "absolute")
    return merged


def _speedups(frame: pd.DataFrame) -> dict[str, pd.Series]:
    def column(name: str) -> pd.Series:
        return pd.to_numeric(frame[name], errors="coerce") if name in frame else pd.Series(np.nan, index=frame.index)

    speedup = column("speedup_vs_pytorch")
    # The baseline's own row is 1 by definition: nothing paired to judge it by.
    speedup = speedup.where(frame["variant"] != BASELINE)
    return {"speedup": speedup, "speedup_low": column("speedup_ci_low").fillna(speedup),
            "speedup_high": column("speedup_ci_high").fillna(speedup)}


def _paired_verdict(row: dict[str, Any], min_speedup_change: float) -> str | None:
    """The verdict on the paired speedups, or None where a side has none (the absolute verdict decides)."""
    if row["status_committed"] != "ok" or row["status_fresh"] != "ok":
        return None
    if pd.isna(row["speedup_committed"]) or pd.isna(row["speedup_fresh"]):
        return None
    if row["speedup_high_fresh"] < row["speedup_low_committed"] and row["speedup_change"] < -min_speedup_change:
        return SLOWER
    if row["speedup_low_fresh"] > row["speedup_high_committed"] and row["speedup_change"] > min_speedup_change:
        return FASTER
    return SAME


def _verdict(row: dict[str, Any], min_change: float) -> str:
    if pd.isna(row["status_committed"]):
        return "new row"
    if pd.isna(row["status_fresh"]):
        return "not measured now"
    if row["status_committed"] == "ok" and row["status_fresh"] != "ok":
        return FAILED
    if row["status_committed"] != "ok" or row["status_fresh"] != "ok":
        return "no number to compare"
    if row["low_fresh"] > row["high_committed"] and row["change"] > min_change:
        return SLOWER
    if row["high_fresh"] < row["low_committed"] and row["change"] < -min_change:
        return FASTER
    return SAME


def is_regression(verdicts: pd.Series) -> pd.Series:
    return verdicts.isin([SLOWER, FAILED])


def host_note(committed: pd.DataFrame, fresh: pd.DataFrame) -> str:
    """How fast the host ran the canary now against then: a change of about that size in every row is the
    host's (a busier or slower machine of the same fingerprint), not the code's."""
    if "canary_ms" not in committed or "canary_ms" not in fresh:
        return ""
    then, now = pd.to_numeric(committed["canary_ms"]).median(), pd.to_numeric(fresh["canary_ms"]).median()
    if pd.isna(then) or pd.isna(now) or not then:
        return ""
    return f"; the canary ran at {now / then:.2f}× its committed time, so the host itself moved by about that"


def report_table(comparison: pd.DataFrame) -> str:
    def speedup(value: float, low: float, high: float) -> str:
        return "–" if pd.isna(value) else f"{value:.2f}× [{low:.2f}–{high:.2f}]"

    def change(value: float) -> str:
        return "–" if pd.isna(value) else f"{value:+.1%}"

    table = pd.DataFrame({
        "model": comparison["model"],
        "variant": comparison["variant"],
        "batch": comparison["batch_size"],
        "seq": comparison["sequence_length"],
        "committed p50 ms": [latency_text(*v) for v in zip(
            comparison["p50_ms_committed"], comparison["low_committed"], comparison["high_committed"])],
        "fresh p50 ms": [latency_text(*v) for v in zip(
            comparison["p50_ms_fresh"], comparison["low_fresh"], comparison["high_fresh"])],
        "change": comparison["change"].map(change),
        "absolute": comparison["absolute_verdict"],
        "committed speedup": [speedup(*v) for v in zip(comparison["speedup_committed"],
                                                       comparison["speedup_low_committed"],
                                                       comparison["speedup_high_committed"])],
        "fresh speedup": [speedup(*v) for v in zip(comparison["speedup_fresh"], comparison["speedup_low_fresh"],
                                                   comparison["speedup_high_fresh"])],
        "speedup change": comparison["speedup_change"].map(change),
        "paired": comparison["paired_verdict"].fillna("–"),
        "verdict": [f"**{v}** ({by})" if is_regression(pd.Series([v])).iloc[0] else f"{v} ({by})"
                    for v, by in zip(comparison["verdict"], comparison["decided_by"])],
    })
    return markdown_table(table)


def check_regressions(summary_paths: Sequence[str | Path], ref: str = "HEAD",
                      min_change: float = DEFAULT_MIN_CHANGE, decide_on: str = "paired",
                      min_speedup_change: float = DEFAULT_MIN_SPEEDUP_CHANGE) -> str:
    """Compare each summary with its committed version at `ref`; return the report, or raise RegressionError
    (with the report) when a row got slower beyond noise or failed."""
    from inference_bench.artifacts import read_csv, read_json

    reports, regressions = [], 0
    for path in map(Path, summary_paths):
        committed = read_committed(path, ref)
        fresh_environment = read_json(layout.beside_summary(path, layout.ENVIRONMENT))
        check_same_machine(committed.environment, fresh_environment, str(path))
        comparison = compare_summaries(committed.summary, read_csv(path), min_change, decide_on, min_speedup_change)
        regressions += int(is_regression(comparison["verdict"]).sum())
        fresh = read_csv(path)
        reports.append(f"{path} against {ref} (commit {str(committed.environment.get('git_commit'))[:7]} measured "
                       f"it; this run: commit {str(fresh_environment.get('git_commit'))[:7]}){host_note(committed.summary, fresh)}:"
                       f"\n\n" + report_table(comparison))
    report = "\n".join(reports)
    if regressions:
        raise RegressionError(f"{regressions} row(s) slower beyond noise (or failed) against {ref}:\n\n{report}")
    return report
