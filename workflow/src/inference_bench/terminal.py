"""A short terminal: one line per job that does work, and the progress after it; the rest stays in the logs.

Snakemake prints about fifteen lines per job (its input, output, log, reason, resources, then "Finished" and
the step count). This filter, installed on Snakemake's logger while the workflow is read, keeps a line per job
(the time, the rule and its wildcards) and the step count after it, and drops the per-variant result jobs
(they copy a variant's numbers out of its comparison) and the scheduler's "Select jobs"/"Execute" lines.
Everything else (errors, warnings, the pipeline's own lines) passes untouched; `--verbose` and dry runs
turn it off.
It reads the records through the logger-plugin interface's events (snakemake_interface_logger_plugins).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from snakemake_interface_logger_plugins.common import LogEvent

#: `extra=` of a pipeline line for the job's log and not the terminal (workflow/scripts/_common.py reads it).
LOG_ONLY = {"terminal": False}
#: Jobs that do no work worth a line of their own: copying a variant's numbers, the target rule.
SILENT_RULES = frozenset({"variant_result", "all"})
_SCHEDULER_CHATTER = ("Select jobs to execute",)


class ShortJobLines(logging.Filter):
    """Turn each job's header into one line; drop the chatter around it (see the module's docstring)."""

    def __init__(self, dry_run: Callable[[], bool] = lambda: False) -> None:
        super().__init__()
        self._dry_run = dry_run
        self._rule_of: dict[int, str] = {}
        self._last_finished: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._dry_run():
            return True
        event = getattr(record, "event", None)
        if event is None:
            return not (record.levelno == logging.INFO and str(record.msg).startswith(_SCHEDULER_CHATTER))
        if event == LogEvent.JOB_INFO:
            rule = getattr(record, "rule_name", "")
            self._rule_of[getattr(record, "jobid", -1)] = rule
            if rule in SILENT_RULES:
                return False
            wildcards = ", ".join(f"{k}={v}" for k, v in (getattr(record, "wildcards", None) or {}).items())
            record.event = LogEvent.RUN_INFO
            record.msg = f"[{dt.datetime.now():%H:%M:%S}] {rule}" + (f" ({wildcards})" if wildcards else "")
            record.args = ()
            return True
        if event == LogEvent.JOB_STARTED:  # "Execute 1 jobs...": the job's own line follows
            return False
        if event == LogEvent.JOB_FINISHED:
            self._last_finished = self._rule_of.get(getattr(record, "job_id", -1))
            return False
        if event == LogEvent.PROGRESS:
            return self._last_finished not in SILENT_RULES or record.__dict__.get("done") == record.__dict__.get("total")
        return True


def install(verbose: bool = False, dry_run: Callable[[], bool] = lambda: False) -> None:
    """Put the filter on the handlers of Snakemake's logger that write to the terminal, unless the run is
    verbose (or a dry run: its job headers are the plan). Its log file under .snakemake/log keeps every line."""
    if verbose:
        return
    short = ShortJobLines(dry_run)
    for handler in logging.getLogger("snakemake.logging").handlers:
        terminal = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if terminal and not any(isinstance(f, ShortJobLines) for f in handler.filters):
            handler.addFilter(short)
