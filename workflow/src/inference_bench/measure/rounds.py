"""A comparison: every variant of one (tag, model, batch, sequence), timed side by side until its speedups are
known to `target_interval` or its time budget is spent.

The design follows the variance of this kind of measurement (the README's "How it measures" has the table it
came from; Kalibera and Jones, "Rigorous Benchmarking in Reasonable Time", ISMM 2013, give the method):

- **Processes.** A variant is timed in several fresh processes (`processes`, more up to `max_processes`
  while the target is not met), one per variant at a time: a generation. On the 2-core VMs the variance
  table comes from, the state of the host moves over tens of seconds (every engine 5-20% faster or slower
  for a while), and not by the same factor for every engine, so even a paired ratio moves with it; and a
  process keeps its own layout and placement. Cycles within a process do not sample either; processes
  spread over the comparison's time do. The process is the replicate every interval counts.
- **Zygote.** Each PyTorch process is forked from one that has torch and transformers imported (measure.zygote):
  at batch 1 a generation's imports were 9.5 of its 15 s; forked, a process pays only for its own model and
  compile. ONNX Runtime's processes start as fresh interpreters: they import neither, and load in under a second.
- **Blocks.** A generation's processes load at once (nothing is timed while they do); right before its first
  block each makes untimed calls for about a block (the others' loading and timing made it cold; the first
  process's calls size the variant's blocks). A process waits stopped (SIGSTOP: no thread of it can spin on a core) while
  the others time. The processes take turns in short blocks of calls (`block_s`), one block each per
  cycle, the order reversing from cycle to cycle, so what drifts within a generation falls on every variant
  alike and the ratio of two blocks of one cycle cancels what it can.
- **Stopping.** After each generation of processes (one per variant, `cycles` blocks each), every variant's
  speedup over the baseline is estimated (statistics.paired_block_speedup: the mean over processes of the
  mean log ratio over cycles, a t interval over processes). The comparison stops once every interval lies
  within +-target_interval of its estimate, or when the next generation would not fit in `time_budget_s`.
  Its record says which, after how many processes and blocks, and how wide each interval was.

A variant that fails (its batch does not fit, its outputs drift) is recorded as failed and left out of later
cycles and generations; the others go on. Only the first generation checks parity.

`variant_result` turns a comparison into one variant's result: its latency (the median of its process
medians, with a t interval over processes), its block medians (the paired speedups are computed from them
by the summary), what the quiet-machine check saw.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import inference_bench
from inference_bench import layout
from inference_bench.artifacts import read_json, write_json_atomic
from inference_bench.errors import PipelineError
from inference_bench.measure.host import disturbed_cycles, disturbed_share, kept_cycles, undisturbed_level
from inference_bench.measure.run import BenchmarkFailure, BenchmarkJob, failure_record
from inference_bench.measure.statistics import Estimate, median_interval, paired_block_speedup, relative_half_width
from inference_bench.measure.timing import latency_statistics
from inference_bench.measure.zygote import ForkedProcess, Zygote, zygote_possible
from inference_bench.terminal import LOG_ONLY
from inference_bench.variants import BASELINE
from inference_bench.variants import variant as lookup_variant

log = logging.getLogger(__name__)

#: The package's parent: a worker imports this checkout's code, whatever else is installed.
_SOURCE = Path(inference_bench.__file__).resolve().parents[1]
#: The first generation keeps at least this many cycles before the budget may end it (were it the only one, one
#: ratio would have no spread); later ones at least one: there the processes are the replicates, and a third
#: process of one cycle is worth more than none (at batch 32, sequence 128 on 2 cores, a generation's loading and
#: untimed calls cost 21-33 s and a cycle 7 s: a budget of 120 s that held 2 generations of 2 cycles had room
#: for a third of 1, and the t quantile of 2 processes is 12.7 against 4.3 for 3).
MIN_CYCLES = 2


def fewest_cycles(generation: int) -> int:
    return MIN_CYCLES if generation == 0 else 1


class WorkerError(PipelineError, RuntimeError):
    """A worker process crashed (a bug or a broken install, not a property of the variant)."""


@dataclass(frozen=True)
class Design:
    """How a comparison samples each level of variance, and when it stops (config: benchmark.<field>)."""

    processes: int = 3  # fresh processes per variant before the stopping rule is asked
    max_processes: int = 10
    cycles: int = 3  # blocks per process (fewer where the budget needs: planned_cycles)
    block_s: float = 0.2  # a block's length: calls per block = block_s / a warm-up call's time, at least 1
    target_interval: float = 0.03  # +-: every speedup's interval within this share of its estimate
    time_budget_s: float = 120.0  # per comparison's processes, loading included
    max_host_slowdown: float = 0.07  # a cycle is disturbed when a probe around it is this much slower (measure.host)
    undisturbed_only: bool = False  # the speedups count the undisturbed cycles only (measure.host says when)

    def __post_init__(self) -> None:
        if not 1 <= self.processes <= self.max_processes:
            raise ValueError(f"need 1 <= processes ({self.processes}) <= max_processes ({self.max_processes})")
        if self.cycles < MIN_CYCLES:
            raise ValueError(f"cycles must be >= {MIN_CYCLES}, got {self.cycles}")
        if self.block_s < 0 or self.target_interval <= 0 or self.time_budget_s <= 0 or self.max_host_slowdown < 0:
            raise ValueError("block_s and max_host_slowdown must be >= 0, target_interval and time_budget_s > 0")


#: The config keys (benchmark.<key>) that make a comparison's Design.
DESIGN_CONFIG_KEYS = tuple(Design.__dataclass_fields__)


@dataclass(frozen=True)
class Comparison:
    """The jobs of one (tag, model, batch, sequence), one per variant, and how to time them side by side."""

    jobs: tuple[BenchmarkJob, ...]
    design: Design = field(default_factory=Design)
    config_for_hash: Any = None
    baseline: str = BASELINE

    def __post_init__(self) -> None:
        shapes = {(j.hardware.name, j.model, j.batch_size, j.sequence_length) for j in self.jobs}
        if len(shapes) > 1:
            raise ValueError(f"one comparison times one tag, model and shape, got {sorted(shapes)}")
        names = [j.variant for j in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"a variant appears twice in {names}")


class Worker(Protocol):
    """A variant's process, as the comparison sees it (WorkerProcess; tests give fakes)."""

    def ask(self, message: dict[str, Any]) -> dict[str, Any]: ...

    def send(self, message: dict[str, Any]) -> None: ...

    def receive(self) -> dict[str, Any]: ...

    def cpu_seconds(self) -> float | None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def close(self) -> dict[str, Any]: ...


class WorkerProcess:
    """`python -m inference_bench.measure.worker` on two pipes of its own."""

    def __init__(self, label: str, log_path: str | None = None, zygote: Zygote | None = None) -> None:
        commands_r, commands_w = os.pipe()
        replies_r, replies_w = os.pipe()
        self.label, self.log_path = label, log_path
        self.process: subprocess.Popen[bytes] | ForkedProcess
        self.forked = zygote is not None
        if zygote is not None:  # forked from the comparison's zygote: its imports are done
            self.process = ForkedProcess(zygote, zygote.fork(commands_r, replies_w))
        else:
            env = {**os.environ,
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(_SOURCE), os.environ.get("PYTHONPATH")]))}
            command = [sys.executable, "-m", "inference_bench.measure.worker", str(commands_r), str(replies_w)]
            if log_path:
                command.append(str(log_path))
            self.process = subprocess.Popen(command, env=env, pass_fds=(commands_r, replies_w))
        os.close(commands_r)
        os.close(replies_w)
        self._commands = Connection(commands_w, readable=False)
        self._replies = Connection(replies_r, writable=False)

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def send(self, message: dict[str, Any]) -> None:
        try:
            self._commands.send_bytes(json.dumps(message).encode())
        except OSError:  # the worker is gone: receive() says how
            pass

    def receive(self) -> dict[str, Any]:
        try:
            return json.loads(self._replies.recv_bytes())
        except (EOFError, OSError):
            return self._ended()

    def _ended(self) -> dict[str, Any]:
        """The worker went away mid-message: killed by a signal (the job's failure), else crashed (a bug)."""
        code = self.process.wait()
        if code < 0:
            why = " (the kernel's out-of-memory killer sends it)" if code == -signal.SIGKILL else ""
            return {"status": "killed", "failure": f"{self.label} was killed by {signal.Signals(-code).name}{why}"}
        where = f"; its traceback is in {self.log_path}" if self.log_path else " (its traceback is above)"
        raise WorkerError(f"the worker timing {self.label} exited with code {code}{where}")

    def cpu_seconds(self) -> float | None:
        """CPU time of the worker so far, every thread of it, to the nanosecond (the scheduler's own count in
        /proc/<pid>/task/*/schedstat; /proc/<pid>/stat counts 10 ms ticks, too coarse for a 50 ms block)."""
        return process_cpu_seconds(self.process.pid)

    def pause(self) -> None:
        """Stop the worker (SIGSTOP) while another one times: its engine's threads may still be spinning from its
        last block (ONNX Runtime's spin for work after a run), and a stopped process uses no CPU at all."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)
            _wait_until_stopped(self.process.pid)

    def resume(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def close(self) -> dict[str, Any]:
        self.resume()
        closing = {}
        if self.process.poll() is None:
            try:
                self._commands.send_bytes(json.dumps({"op": "close"}).encode())
                closing = json.loads(self._replies.recv_bytes())
            except (EOFError, OSError):
                pass
        for channel in (self._commands, self._replies):
            channel.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return closing


def _wait_until_stopped(pid: int, timeout_s: float = 1.0) -> None:
    """Return once every thread of `pid` has stopped: a signal stops a thread only when that thread next runs,
    and a spinning thread of a stopped process may take a scheduler slice to notice, on the next block's time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            states = [(task / "stat").read_text().rsplit(")", 1)[1].split()[0]
                      for task in Path(f"/proc/{pid}/task").iterdir()]
        except (OSError, IndexError):
            return  # gone, or no /proc: nothing to wait for
        if all(state in "Tt" for state in states):
            return
        time.sleep(0.0005)


def process_cpu_seconds(pid: int) -> float | None:
    """Seconds on a CPU of every thread of process `pid` so far (None where /proc cannot tell)."""
    total_ns = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended between the listing and the read
    except OSError:
        return None
    return total_ns / 1e9


def cycle_order(variants: list[str], cycle: int) -> list[str]:
    """The configured order in even cycles, reversed in odd ones."""
    return list(variants) if cycle % 2 == 0 else list(reversed(variants))


def speedup_estimates(processes: dict[str, list[dict[str, Any]]], baseline: str, max_host_slowdown: float = 0.0,
                      undisturbed_only: bool = False) -> dict[str, Estimate]:
    """Every variant's paired speedup over the baseline from the processes timed so far (complete cycles only;
    with `undisturbed_only`, those the host disturbed left out where enough others remain: measure.host)."""
    if not processes.get(baseline):
        return {}
    base = block_medians(processes[baseline])
    disturbed = host_disturbed_cycles(processes[baseline], max_host_slowdown)
    estimates = {}
    for name, timed in processes.items():
        if name == baseline or not timed:
            continue
        mine = block_medians(timed)
        cycles = [min(len(b), len(m)) for b, m in zip(base, mine)]
        if len(mine) != len(base) or min(cycles) == 0:
            continue
        kept = kept_cycles([flags[:n] for flags, n in zip(disturbed, cycles)]) if undisturbed_only else None
        estimates[name] = paired_block_speedup([b[:n] for b, n in zip(base, cycles)],
                                               [m[:n] for m, n in zip(mine, cycles)], kept)
    return estimates


def host_disturbed_cycles(baseline_processes: list[dict[str, Any]], max_host_slowdown: float) -> list[list[bool]]:
    """[process][cycle]: whether the host probes the baseline's processes took around each cycle saw it disturbed."""
    return disturbed_cycles([p.get("host_probes_ms") or [] for p in baseline_processes],
                            [len(p["blocks"]) for p in baseline_processes], max_host_slowdown)


def latency_estimates(processes: dict[str, list[dict[str, Any]]]) -> dict[str, Estimate]:
    """Where there is no baseline to pair with: each variant's latency interval over its processes."""
    return {name: median_interval([_latencies(p) for p in timed]) for name, timed in processes.items() if timed}


def block_medians(timed: list[dict[str, Any]]) -> list[list[float]]:
    return [[float(np.median(block["latencies_ms"])) for block in process["blocks"]] for process in timed]


def _latencies(process: dict[str, Any]) -> list[float]:
    return [x for block in process["blocks"] for x in block["latencies_ms"]]


def widest(estimates: dict[str, Estimate]) -> float:
    """The largest relative half-width among the estimates (how far the comparison is from its target)."""
    return max((relative_half_width(e) for e in estimates.values()), default=float("inf"))


def run_comparison(comparison: Comparison, log_path: str | None = None,
                   start_worker: Callable[[BenchmarkJob, str], Worker] | None = None,
                   clock: Callable[[], float] = time.monotonic,
                   time_gemms: Callable[[BenchmarkJob], list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Time every variant in generations of processes and interleaved blocks until the design's stopping rule
    or its budget ends it; return the comparison's record (what its rule writes). PyTorch's workers are forked
    from a zygote that has torch and transformers imported (measure.zygote), started once the budget's clock runs;
    ONNX Runtime's start as fresh interpreters. Tests hand in
    fake workers, a fake clock and no matrix-multiply timing."""
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    gemms = (time_gemms or shape_gemms)(comparison.jobs[0])  # a few seconds, before the budget's clock starts
    began = clock()
    if start_worker is not None:
        return _run_comparison(comparison, start_worker, clock, began, started, gemms)
    torch_jobs = [job for job in comparison.jobs if lookup_variant(job.variant).engine == "torch"]
    if not torch_jobs or not zygote_possible():
        return _run_comparison(comparison, lambda job, label: WorkerProcess(label, log_path), clock, began, started,
                               gemms)
    zygote = Zygote(log_path, torch_jobs[0].model_dir, source=_SOURCE)  # its imports count in the budget

    def start(job: BenchmarkJob, label: str) -> WorkerProcess:
        # Only PyTorch's processes are forked: the zygote has torch imported, which an ONNX Runtime process does
        # not import (its peak memory would count torch's), and which it does not need (it loads in under 1 s).
        forked = lookup_variant(job.variant).engine == "torch"
        return WorkerProcess(label, log_path, zygote if forked else None)

    try:
        record = _run_comparison(comparison, start, clock, began, started, gemms)
        record["stopping"]["zygote_import_s"] = zygote.import_s
        return record
    finally:
        zygote.close()


def _run_comparison(comparison: Comparison, start_worker: Callable[[BenchmarkJob, str], Worker],
                    clock: Callable[[], float],
                    began: float, started: str, gemms: list[dict[str, Any]]) -> dict[str, Any]:
    design, jobs = comparison.design, {job.variant: job for job in comparison.jobs}
    timed: dict[str, list[dict[str, Any]]] = {name: [] for name in jobs}
    failed: dict[str, dict[str, Any]] = {}
    shape = _shape_of(comparison)
    block_calls: dict[str, int] = {}
    costs: list[dict[str, float]] = []  # per generation: loading, and one cycle
    stopped_by, estimates = "max_processes", {}
    for generation in range(design.max_processes):
        live = [name for name in jobs if name not in failed]
        if not live:
            stopped_by = "every variant failed"
            break
        if generation >= design.processes:
            estimates = _estimates(timed, comparison.baseline, failed, design)
            if widest(estimates) <= design.target_interval:
                stopped_by = "target"
                break
        if costs and clock() - began + costs[-1]["load_s"] + costs[-1]["cycle_s"] > design.time_budget_s:
            stopped_by = "budget"
            break
        cost, out_of_budget = _generation(comparison, generation, live, start_worker, timed, failed, block_calls,
                                          clock, began)
        costs.append(cost)
        estimates = _estimates(timed, comparison.baseline, failed, design)
        log.info("%s", progress_line(shape, generation + 1, design, widest(estimates), clock() - began))
        if out_of_budget:
            stopped_by = "budget"
            break
    else:
        estimates = _estimates(timed, comparison.baseline, failed, design)
        if widest(estimates) <= design.target_interval:
            stopped_by = "target"
    _warn_of_noise(shape, timed)
    host = host_summary(timed.get(comparison.baseline) or [], design.max_host_slowdown, design.undisturbed_only)
    if design.undisturbed_only and host["counted"] == "every cycle":
        log.warning("%s: the host was disturbed in %.0f%% of the cycles (measure.host), too many to leave out: its "
                    "speedups count every cycle, and mix the host's two states", shape, 100 * host["disturbed_share"])
    return {
        "comparison_id": uuid.uuid4().hex[:12],
        "started": started,
        "design": asdict(design),
        "baseline": comparison.baseline,
        "stopping": {"stopped_by": stopped_by, "elapsed_s": clock() - began,
                     "processes": max((len(t) for t in timed.values()), default=0),
                     "reached_target": widest(estimates) <= design.target_interval,
                     "half_widths": {name: relative_half_width(e) for name, e in estimates.items()},
                     "generation_costs": costs, "host": host},
        "gemms": gemms,
        "variants": {name: ({"failed": failed[name]} if name in failed else {"processes": timed[name]})
                     for name in jobs},
    }


def host_summary(baseline_processes: list[dict[str, Any]], max_host_slowdown: float,
                 undisturbed_only: bool) -> dict[str, Any]:
    """What the host probes saw over a comparison: which cycles were disturbed, and which ones the speedups count
    ("undisturbed cycles" where asked and enough were; else "every cycle"; "unprobed" without probes)."""
    disturbed = host_disturbed_cycles(baseline_processes, max_host_slowdown)
    probes = [x for p in baseline_processes for x in p.get("host_probes_ms") or []]
    if not probes or max_host_slowdown <= 0:
        counted = "unprobed"
    else:
        counted = "undisturbed cycles" if undisturbed_only and kept_cycles(disturbed) is not None else "every cycle"
    return {"max_host_slowdown": max_host_slowdown, "probe_undisturbed_ms": undisturbed_level(probes) if probes else None,
            "disturbed_cycles": disturbed, "disturbed_share": disturbed_share(disturbed) if probes else None,
            "counted": counted}


def _warn_of_noise(shape: str, timed: dict[str, list[dict[str, Any]]]) -> None:
    """One line for the whole comparison when blocks ran beside other processes (each block's retry is in the log)."""
    quiet = [b["quiet"] for processes in timed.values() for p in processes for b in p["blocks"]]
    retried, noisy = sum(bool(q.get("retried")) for q in quiet), sum(bool(q.get("noisy")) for q in quiet)
    if retried:
        log.warning("%s: %d of %d blocks ran while other processes used more of the machine than "
                    "benchmark.max_other_cpu_share: timed again, %d still over", shape, retried, len(quiet), noisy)


def _estimates(timed: dict[str, list[dict[str, Any]]], baseline: str,
               failed: dict[str, dict[str, Any]], design: Design) -> dict[str, Estimate]:
    live = {name: processes for name, processes in timed.items() if name not in failed}
    if baseline in live:
        return speedup_estimates(live, baseline, design.max_host_slowdown, design.undisturbed_only)
    return latency_estimates(live)


def _generation(comparison: Comparison, generation: int, live: list[str],
                start_worker: Callable[[BenchmarkJob, str], Worker],
                timed: dict[str, list[dict[str, Any]]], failed: dict[str, dict[str, Any]],
                block_calls: dict[str, int], clock: Callable[[], float], began: float) -> tuple[dict[str, float], bool]:
    """One fresh process per live variant, loaded one after the other, then `cycles` interleaved cycles of one
    block each. Returns what loading and a cycle cost, and whether the budget cut the cycles short."""
    design, jobs = comparison.design, {job.variant: job for job in comparison.jobs}
    gen_began = loading = clock()
    workers: dict[str, Worker] = {}
    entries: dict[str, dict[str, Any]] = {}
    out_of_budget = False
    try:
        # Every worker loads at once (nothing is timed meanwhile: loading is imports, files and the compiler,
        # which the cores share).
        for name in live:
            label = f"{name} at batch {jobs[name].batch_size}, sequence {jobs[name].sequence_length}"
            workers[name] = start_worker(jobs[name], label)
            job = replace(jobs[name], check_parity=generation == 0)
            workers[name].send({"op": "load", "job": asdict(job), "config_for_hash": comparison.config_for_hash})
        log.info("process %d of every variant: loading", generation + 1, extra=LOG_ONLY)
        for name in live:
            reply = workers[name].receive()
            if reply.get("status") != "ok":
                failed[name] = _failure(jobs[name], reply, comparison.config_for_hash)
                workers.pop(name).close()
                continue
            workers[name].pause()
            record = reply["record"]
            if generation:
                record.pop("environment", None)  # the first process's describes them all
            entries[name] = {"process": generation, "record": record, "blocks": [],
                             "forked": bool(getattr(workers[name], "forked", False))}
        loaded = clock()
        cycle_s, probe_s = float("nan"), 0.0
        planned = design.cycles
        probing_host = design.max_host_slowdown > 0 and jobs[comparison.baseline].hardware.device == "cpu" \
            if comparison.baseline in jobs else False
        host_probes: list[float] = []
        for cycle in range(design.cycles):
            cycle_began = clock()
            if cycle == 1:  # one cycle timed: what the rest of this generation can have is known
                planned = planned_cycles(design, generation, gen_began - began, loaded - gen_began + probe_s, cycle_s)
            if cycle >= planned:
                break
            if cycle >= fewest_cycles(generation) and cycle_began - began + cycle_s > design.time_budget_s:
                out_of_budget = True
                break
            if probing_host:  # the host's state before each cycle (and after the last, below)
                _probe_host(workers, comparison.baseline, host_probes)
            for position, name in enumerate(cycle_order([n for n in live if n in workers], cycle)):
                workers[name].resume()
                if cycle == 0:
                    # Untimed calls for about a block, at least two, right before the first: loading and timing
                    # the others made this process cold (a first block timed cold, even after a warm-up call of
                    # its own a few seconds before, ran up to 45% slower than the rest at batch 32), and a fresh
                    # engine's first two calls are cold anyway; the first process's calls size the variant's blocks.
                    probing = clock()
                    reply = workers[name].ask({"op": "size", "block_s": design.block_s})
                    probe_s += clock() - probing
                    if reply.get("status") != "ok":
                        failed[name] = _failure(jobs[name], reply, comparison.config_for_hash)
                        workers.pop(name).close()
                        entries.pop(name, None)
                        continue
                    # The first process sizes the variant's blocks; later ones keep its count, so blocks stay alike.
                    block_calls.setdefault(name, int(reply["calls_per_block"]))
                    entries[name]["calls_per_block"] = block_calls[name]
                others = {other: w.cpu_seconds() for other, w in workers.items() if other != name}
                reply = workers[name].ask({"op": "block", "calls": block_calls[name]})
                if name in workers:
                    workers[name].pause()
                idle_s = _spent(others, workers)
                if reply.get("status") != "ok":
                    failed[name] = _failure(jobs[name], reply, comparison.config_for_hash)
                    workers.pop(name).close()
                    entries.pop(name, None)
                    continue
                entries[name]["blocks"].append({"cycle": cycle, "position": position,
                                                "latencies_ms": reply["latencies_ms"], "quiet": reply["quiet"],
                                                "idle_workers_cpu_s": idle_s})
            took = clock() - cycle_began - (probe_s if cycle == 0 else 0.0)  # the probes are the loading's cost
            cycle_s = took if math.isnan(cycle_s) else max(cycle_s, took)
        if probing_host and host_probes:
            _probe_host(workers, comparison.baseline, host_probes)
            if comparison.baseline in entries and len(host_probes) == len(entries[comparison.baseline]["blocks"]) + 1:
                entries[comparison.baseline]["host_probes_ms"] = host_probes
        for name, worker in list(workers.items()):
            if name in entries:
                entries[name]["closing"] = worker.close()
                timed[name].append(entries[name])
        workers.clear()
    finally:
        for worker in workers.values():
            worker.close()
    return ({"load_s": loaded - loading + probe_s, "cycle_s": 0.0 if math.isnan(cycle_s) else cycle_s},
            out_of_budget)


def _probe_host(workers: dict[str, Worker], baseline: str, probes: list[float]) -> None:
    """The baseline's process times the host probe (measure.host) between two cycles; nothing when it is gone."""
    worker = workers.get(baseline)
    if worker is None:
        return
    worker.resume()
    reply = worker.ask({"op": "probe"})
    if baseline in workers:
        worker.pause()
    if reply.get("status") == "ok":
        probes.append(float(reply["probe_ms"]))


def planned_cycles(design: Design, generation: int, elapsed_s: float, load_s: float, cycle_s: float) -> int:
    """Cycles for this generation: `design.cycles`, fewer (down to fewest_cycles) where that many would leave too
    little of the budget for the `design.processes` generations every interval needs (a large batch on a
    slow machine: its processes, not its cycles, are what the intervals count)."""
    left = design.processes - generation
    if left <= 0 or math.isnan(cycle_s) or cycle_s <= 0:
        return design.cycles
    share = (design.time_budget_s - elapsed_s) / left  # this generation's part of what is left
    fits = int((share - load_s) // cycle_s)
    return max(fewest_cycles(generation), min(design.cycles, fits))


def _spent(before: dict[str, float | None], workers: dict[str, Worker]) -> float | None:
    """CPU seconds the idle workers used while one worker timed its block (None where /proc cannot tell)."""
    total = 0.0
    for name, was in before.items():
        now = workers[name].cpu_seconds() if name in workers else None
        if was is None or now is None:
            return None
        total += now - was
    return total


def _failure(job: BenchmarkJob, reply: dict[str, Any], config_for_hash: Any) -> dict[str, Any]:
    """A failed reply as the variant's failed record (a worker killed by a signal leaves only its reason)."""
    if reply.get("status") == "failed":
        return reply
    failure = BenchmarkFailure(f"{job.variant} at batch {job.batch_size}, sequence {job.sequence_length}: "
                               f"{reply.get('failure', 'the worker gave no answer')}")
    return {**failure_record(job, failure, config_for_hash=config_for_hash), "failure_kind": "WorkerKilled"}


def shape_gemms(job: BenchmarkJob) -> list[dict[str, Any]]:
    """GFLOP/s of the model's matrix multiplies at the job's shape, per engine and precision (an empty list,
    with a warning, where they cannot be timed: the summary then bounds the rows by the calibration's)."""
    from inference_bench.measure.calibration import measure_gemms
    from inference_bench.measure.flops import model_gemms
    from inference_bench.hardware import resolve_threads
    from inference_bench.models import ArchitectureFacts

    facts = ArchitectureFacts.from_model_dir(job.model_dir)
    log.info("timing the model's matrix multiplies at batch %d, sequence %d", job.batch_size,
             job.sequence_length, extra=LOG_ONLY)
    try:
        return measure_gemms(job.hardware.device, resolve_threads(job.threads),
                             model_gemms(facts, job.batch_size, job.sequence_length))
    except (MemoryError, RuntimeError) as error:
        log.warning("could not time the model's matrix multiplies at this shape (%s): the calibration's "
                    "square sizes bound its rows", error)
        return []


def _shape_of(comparison: Comparison) -> str:
    job = comparison.jobs[0]
    return f"{job.model} batch {job.batch_size}, sequence {job.sequence_length} ({len(comparison.jobs)} variants)"


def progress_line(shape: str, done: int, design: Design, half_width: float, elapsed_s: float) -> str:
    """`<shape>: 3 processes per variant, widest interval +-4.1% (target +-3%), 1 min 10 s of 2 min 0 s`."""
    widest_text = "not yet known" if math.isinf(half_width) else f"+-{100 * half_width:.1f}%"
    return (f"{shape}: {done} process{'es' if done > 1 else ''} per variant, widest interval {widest_text} "
            f"(target +-{100 * design.target_interval:g}%), {_duration(elapsed_s)} of {_duration(design.time_budget_s)}")


def _duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "?"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def variant_result(comparison: dict[str, Any], variant: str) -> dict[str, Any]:
    """One variant's result from its comparison: a failed record as it was, or its processes summarized."""
    entry = comparison["variants"].get(variant)
    if entry is None:
        raise KeyError(f"variant {variant!r} was not timed in comparison {comparison.get('comparison_id')}")
    if "failed" in entry:
        return entry["failed"]
    processes = entry["processes"]
    first = processes[0]["record"]
    per_process = [_latencies(p) for p in processes]
    latency = median_interval(per_process)
    pooled = latency_statistics([x for p in per_process for x in p], first["batch_size"])
    closings = [p.get("closing") or {} for p in processes]
    gpu_peaks = [c["peak_gpu_memory_bytes"] for c in closings if c.get("peak_gpu_memory_bytes") is not None]
    blocks = [b for p in processes for b in p["blocks"]]
    stopping = comparison.get("stopping", {})
    kept = ("status", "hardware", "hardware_description", "device", "model", "model_type", "variant", "batch_size",
            "sequence_length", "threads", "timing_settings", "inputs", "allocator", "flops_per_batch", "model_bytes",
            "parity", "architecture")
    return {
        **{key: first.get(key) for key in kept},
        **pooled,  # every timed call of every process: mean, percentiles, spread
        # The headline latency: the median of the process medians, and its interval over processes.
        "p50_ms": latency.value,
        "p50_ci_low_ms": latency.low,
        "p50_ci_high_ms": latency.high,
        "processes": len(processes),
        "blocks": len(blocks),
        "calls_per_block": processes[0]["calls_per_block"],
        "reached_target": stopping.get("reached_target"),
        "stopped_by": stopping.get("stopped_by"),
        # [process][cycle] of the comparison, from the host probes around each cycle (measure.host): the paired
        # speedups leave the disturbed ones out where enough others remain (`host.counted` says).
        "host": stopping.get("host") or {"counted": "unprobed", "disturbed_cycles": [], "disturbed_share": None},
        "design": comparison.get("design"),
        "achieved_gflops": first["flops_per_batch"] / (latency.value / 1000.0) / 1e9,
        "peak_rss_bytes": max((c.get("peak_rss_bytes") or 0) for c in closings) or None,
        "peak_gpu_memory_bytes": max(gpu_peaks) if gpu_peaks else None,
        "round_latencies_ms": per_process,  # per process (the replicate), for the unpaired intervals
        # [process][cycle][call], for the paired speedups (block medians) and the variance table.
        "block_latencies_ms": [[block["latencies_ms"] for block in p["blocks"]] for p in processes],
        # What a generation of processes cost to load and warm up, and a cycle of blocks (every variant's).
        "design_costs": _mean_costs(stopping.get("generation_costs") or []),
        "process_details": [
            {"process": p["process"], "p50_ms": float(np.median(_latencies(p))), "blocks": len(p["blocks"]),
             "warm_up_ms": p["record"].get("warm_up_ms")}
            for p in processes
        ],
        "quiet": _quiet_summary([p["record"] for p in processes], blocks),
        "comparison": {"id": comparison["comparison_id"], "started": comparison["started"]},
        "shape_gemms": comparison.get("gemms") or [],
        "compile_counters": _summed_counters([c.get("compile_counters") for c in closings]),
        "environment": first["environment"],
    }


def _mean_costs(costs: list[dict[str, float]]) -> dict[str, float]:
    if not costs:
        return {}
    return {key: float(np.mean([c[key] for c in costs])) for key in costs[0]}


def _summed_counters(per_process: list[dict[str, int] | None]) -> dict[str, int] | None:
    """torch.compile's counters in warm-up and blocks, summed over the processes (None for other engines)."""
    counted = [c for c in per_process if c is not None]
    if not counted:
        return None
    return {"recompilations": sum(c["recompilations"] for c in counted),
            "graph_breaks": sum(c["graph_breaks"] for c in counted),
            "graphs": max(c["graphs"] for c in counted)}  # graphs the compiled model was split into


def _quiet_summary(records: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the quiet-machine check saw over the variant's blocks, and the canary over its processes."""
    shares = [b["quiet"]["other_cpu_share"] for b in blocks if b["quiet"].get("other_cpu_share") is not None]
    canaries = [r["canary_ms"] for r in records if r.get("canary_ms") is not None]
    idle = [b["idle_workers_cpu_s"] / b["quiet"]["wall_s"] for b in blocks
            if b.get("idle_workers_cpu_s") is not None and b["quiet"].get("wall_s")]
    return {
        "other_cpu_share": max(shares) if shares else None,
        "retried": sum(bool(b["quiet"].get("retried")) for b in blocks),  # blocks timed twice
        "noisy": sum(bool(b["quiet"].get("noisy")) for b in blocks),  # blocks still over the threshold after it
        "idle_workers_cpu_share": max(idle) if idle else None,  # of one core, the most in any block
        "canary_ms": float(np.median(canaries)) if canaries else None,
        "canary_spread": (max(canaries) / min(canaries)) if canaries else None,  # host drift across processes
    }


def write_comparison(comparison: Comparison, out_path: str | Path, log_path: str | None = None) -> None:
    write_json_atomic(out_path, run_comparison(comparison, log_path))


class VariantFailedError(PipelineError, RuntimeError):
    """A variant of a comparison has no trustworthy number (see its record's reason)."""


def write_variant_result(comparison_path: str | Path, result_path: str | Path, variant: str,
                         on_failure: str = "fail") -> None:
    """Write one variant's result from its comparison. A failed variant, with `on_failure: record`, writes its
    failed record as the result; with `fail`, it leaves a marker beside the results (not an output, so
    Snakemake keeps it: the next run's summary shows the row as failed instead of dropping it) and raises."""
    record = variant_result(read_json(comparison_path), variant)
    marker = layout.failure_marker_path(result_path)
    if record.get("status", "ok") != "ok" and on_failure != "record":
        write_json_atomic(marker, record)
        raise VariantFailedError(
            f"{record['failure']}. Its row is marked failed ({marker}); once the cause is fixed, delete that "
            f"marker and run `snakemake --cores 1 --forcerun benchmark` (or delete {comparison_path}) to time "
            f"it again"
        )
    marker.unlink(missing_ok=True)
    write_json_atomic(result_path, record)
