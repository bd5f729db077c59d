"""Has this checkout got slower? This run's summaries against the committed ones of the same machine.

Row by row (tag, model, variant, batch, sequence), the fresh median latency is compared with the committed one
through their 95% intervals: slower when the fresh interval lies wholly above the committed one and the
median moved by more than `min_change`; faster in the mirror case; otherwise the same within noise. A failed
row where a number stood is a regression too. Results of another machine are refused: the comparison would
measure the machines, not the code.
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

KEYS = ["hardware", "model", "variant", "batch_size", "sequence_length"]
SLOWER, FASTER, SAME = "slower", "faster", "same within noise"
FAILED = "failed (a number before)"
#: The change below which a row is never called slower or faster (the config's `regression.min_change`): default
#: runs hours apart on a 2-core VM had disjoint intervals on a few rows, up to 27% apart (the host moves).
DEFAULT_MIN_CHANGE = 0.15


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


def compare_summaries(committed: pd.DataFrame, fresh: pd.DataFrame,
                      min_change: float = DEFAULT_MIN_CHANGE) -> pd.DataFrame:
    """One row per key present in either summary, with both medians, their intervals and the verdict."""
    left = committed.assign(low=_interval(committed, "low"), high=_interval(committed, "high"))
    right = fresh.assign(low=_interval(fresh, "low"), high=_interval(fresh, "high"))
    columns = [*KEYS, "status", "p50_ms", "low", "high"]
    merged = left[columns].merge(right[columns], on=KEYS, how="outer", suffixes=("_committed", "_fresh"))
    merged["change"] = merged["p50_ms_fresh"] / merged["p50_ms_committed"] - 1.0
    merged["verdict"] = [_verdict(row, min_change) for row in merged.to_dict("records")]
    return merged


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
    table = pd.DataFrame({
        "model": comparison["model"],
        "variant": comparison["variant"],
        "batch": comparison["batch_size"],
        "seq": comparison["sequence_length"],
        "committed p50 ms": [latency_text(*v) for v in zip(
            comparison["p50_ms_committed"], comparison["low_committed"], comparison["high_committed"])],
        "fresh p50 ms": [latency_text(*v) for v in zip(
            comparison["p50_ms_fresh"], comparison["low_fresh"], comparison["high_fresh"])],
        "change": comparison["change"].map(lambda v: "–" if pd.isna(v) else f"{v:+.1%}"),
        "verdict": [f"**{v}**" if is_regression(pd.Series([v])).iloc[0] else v for v in comparison["verdict"]],
    })
    return markdown_table(table)


def check_regressions(summary_paths: Sequence[str | Path], ref: str = "HEAD",
                      min_change: float = DEFAULT_MIN_CHANGE) -> str:
    """Compare each summary with its committed version at `ref`; return the report, or raise RegressionError
    (with the report) when a row got slower beyond noise or failed."""
    from inference_bench.artifacts import read_csv, read_json

    reports, regressions = [], 0
    for path in map(Path, summary_paths):
        committed = read_committed(path, ref)
        fresh_environment = read_json(layout.beside_summary(path, layout.ENVIRONMENT))
        check_same_machine(committed.environment, fresh_environment, str(path))
        comparison = compare_summaries(committed.summary, read_csv(path), min_change)
        regressions += int(is_regression(comparison["verdict"]).sum())
        fresh = read_csv(path)
        reports.append(f"{path} against {ref} (commit {str(committed.environment.get('git_commit'))[:7]} measured "
                       f"it; this run: commit {str(fresh_environment.get('git_commit'))[:7]}){host_note(committed.summary, fresh)}:"
                       f"\n\n" + report_table(comparison))
    report = "\n".join(reports)
    if regressions:
        raise RegressionError(f"{regressions} row(s) slower beyond noise (or failed) against {ref}:\n\n{report}")
    return report
