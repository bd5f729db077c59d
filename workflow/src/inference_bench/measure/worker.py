"""A worker process: one variant, loaded once, timed in blocks of calls for as long as its comparison asks.

`python -m inference_bench.measure.worker COMMANDS_FD REPLIES_FD [LOG]`. The comparison (rounds.py) sends one JSON
message at a time on the first pipe and reads the reply on the second; stdout and stderr stay the libraries':

- `{"op": "load", "job": BenchmarkJob as a dict, "config_for_hash": ...}`: load the engine, check parity when the
  job asks, make the inputs, warm up. Reply: `{"status": "ok", "record": ...}` (what every block of the variant
  shares, TimedVariant.describe) or a failed record when the variant has no trustworthy number (the batch does
  not fit, the outputs drift).
- `{"op": "size", "block_s": s}`: untimed calls for about s seconds, at least two; reply with how many calls make
  such a block.
- `{"op": "block", "calls": n}`: time n calls behind the quiet-machine check. Reply: the latencies and what the
  check saw, or a failed record.
- `{"op": "probe"}`: time the host probe (measure.host; the baseline's worker, which has torch). Reply:
  `{"status": "ok", "probe_ms": ms}`.
- `{"op": "close"}`: reply with what is known at the end (peak memory, compiler counters), then exit.

Between messages the worker sleeps in a blocking read of its pipe (and the comparison holds it stopped while
another worker times). Anything unexpected (a bug, a broken
install) ends the worker with its traceback in the log; the comparison sees its pipe close and stops.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import warnings
from multiprocessing.connection import Connection
from typing import Any

from inference_bench.measure.host import HostProbe
from inference_bench.measure.run import BenchmarkFailure, BenchmarkJob, TimedVariant, failure_record

log = logging.getLogger("workflow")


def _failed(job: BenchmarkJob, failure: BenchmarkFailure, config_for_hash: Any) -> dict[str, Any]:
    log.error("%s", failure)
    return failure_record(job, failure, config_for_hash=config_for_hash)


def _timed(variant: TimedVariant, message: dict[str, Any]) -> dict[str, Any]:
    """A block of timed calls, or the untimed calls that size one."""
    if message["op"] == "block":
        return variant.time_block(int(message["calls"]))
    calls = variant.size_block(float(message["block_s"]))
    return {"calls_per_block": calls, "sizing_ms": variant.sizing_ms}


def serve(commands: Connection, replies: Connection) -> None:
    """Answer the comparison's messages until it says close (or goes away)."""
    variant: TimedVariant | None = None
    probe: HostProbe | None = None
    job: BenchmarkJob | None = None
    config_for_hash: Any = None
    while True:
        try:
            message = json.loads(commands.recv_bytes())
        except EOFError:  # the comparison is gone: nothing left to answer
            return
        op = message["op"]
        if op == "load":
            job, config_for_hash = BenchmarkJob.from_dict(message["job"]), message.get("config_for_hash")
            try:
                variant = TimedVariant(job, config_for_hash)
                reply = {"status": "ok", "record": variant.describe()}
            except BenchmarkFailure as failure:
                reply = _failed(job, failure, config_for_hash)
        elif op in ("block", "size"):
            if variant is None or job is None:
                raise RuntimeError(f"a {op} was asked of a worker with no variant loaded")
            try:
                reply = {"status": "ok", **_timed(variant, message)}
            except BenchmarkFailure as failure:
                reply = _failed(job, failure, config_for_hash)
        elif op == "probe":
            probe = probe or HostProbe()
            reply = {"status": "ok", "probe_ms": probe()}
        elif op == "close":
            replies.send_bytes(json.dumps(variant.closing() if variant is not None else {}).encode())
            return
        else:
            raise ValueError(f"unknown message {op!r}")
        replies.send_bytes(json.dumps(reply).encode())


def _terminal_worthy(record: logging.LogRecord) -> bool:
    """On the terminal, a worker shows only what goes wrong: warnings of the pipeline's own, and errors; its
    progress and every library's notes go to the comparison's log."""
    own = record.name.split(".")[0] in ("workflow", "inference_bench")
    return record.levelno >= logging.ERROR or (own and record.levelno >= logging.WARNING)


def log_to(log_path: str | None) -> None:
    terminal = logging.StreamHandler(sys.stderr)
    terminal.addFilter(_terminal_worthy)
    handlers: list[logging.Handler] = [terminal]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="a"))  # the comparison's log, which waits for us
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s [{os.getpid()}] %(name)s: %(message)s",
                        handlers=handlers, force=True)
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (a worker's comparison or zygote, even while the
    comparison holds it stopped; a zygote's comparison): a killed benchmark job leaves no process behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends an idle worker instead
        return
    if os.getppid() == 1:  # the comparison died before the request took hold
        os._exit(1)


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: python -m inference_bench.measure.worker COMMANDS_FD REPLIES_FD [LOG]")
    die_with_parent()
    log_to(argv[2] if len(argv) == 3 else None)
    commands = Connection(int(argv[0]), writable=False)
    replies = Connection(int(argv[1]), readable=False)
    try:
        serve(commands, replies)
    except Exception:
        log.exception("worker failed")  # into the comparison's log, not only stderr
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
