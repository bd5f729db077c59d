"""One round of one variant, in a process of its own: `python -m inference_bench.measure.worker JOB OUT [LOG]`.

JOB is a BenchmarkJob as JSON; OUT receives the round's record, or a failed record when the job ran but has
no trustworthy number (the batch did not fit, the outputs drifted). Anything else is a bug or a broken
install: the worker exits non-zero with its traceback on stderr, and the comparison stops.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from inference_bench.artifacts import read_json, write_json_atomic
from inference_bench.measure.run import BenchmarkFailure, BenchmarkJob, failure_record, run_benchmark


def run_round(job_path: str | Path, out_path: str | Path) -> None:
    spec = read_json(job_path)
    job = BenchmarkJob.from_dict(spec["job"])
    try:
        record = run_benchmark(job, config_for_hash=spec.get("config_for_hash"))
    except BenchmarkFailure as failure:
        logging.getLogger("workflow").error("%s", failure)
        record = failure_record(job, failure, config_for_hash=spec.get("config_for_hash"))
    write_json_atomic(out_path, record)


def _terminal_worthy(record: logging.LogRecord) -> bool:
    """On the terminal, a round shows only what goes wrong: warnings of the pipeline's own, and errors; its
    progress and every library's notes go to the comparison's log."""
    own = record.name.split(".")[0] in ("workflow", "inference_bench")
    return record.levelno >= logging.ERROR or (own and record.levelno >= logging.WARNING)


def _log_to(log_path: str | None) -> None:
    terminal = logging.StreamHandler(sys.stderr)
    terminal.addFilter(_terminal_worthy)
    handlers: list[logging.Handler] = [terminal]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="a"))  # the comparison's log, which waits for us
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: python -m inference_bench.measure.worker JOB.json OUT.json [LOG]")
    _log_to(argv[2] if len(argv) == 3 else None)
    try:
        run_round(argv[0], argv[1])
    except Exception:
        logging.getLogger("workflow").exception("worker failed")  # into the comparison's log, not only stderr
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
