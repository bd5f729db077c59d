"""Comparisons: every variant timed side by side in fresh processes taking turns in blocks, until its speedups
are known to the target or its budget is spent."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
from scipy.stats import t as student_t

from inference_bench.artifacts import read_json, write_json_atomic
from inference_bench.build.parity import Tolerance
from inference_bench.hardware import HardwareTag
from inference_bench.measure.rounds import (
    Comparison,
    Design,
    VariantFailedError,
    WorkerError,
    cycle_order,
    progress_line,
    run_comparison,
    speedup_estimates,
    variant_result,
    write_variant_result,
)
from inference_bench.measure.run import BenchmarkJob
from inference_bench.measure.timing import TimingSettings

FAST = TimingSettings(warmup_iterations=1)
CPU = HardwareTag(name="cpu", device="cpu", description="test CPU")
LOOSE = Tolerance(max_abs_diff=None, min_cosine=0.99)
#: Two processes per variant, three blocks of about 20 ms each: the machinery, not the numbers.
SMALL = Design(processes=2, max_processes=2, cycles=3, block_s=0.02, time_budget_s=600)


def _job(paths, variant, onnx=None, **kwargs) -> BenchmarkJob:
    return BenchmarkJob(hardware=CPU, model="tiny", variant=variant, batch_size=2, sequence_length=16,
                        model_dir=str(paths["model_dir"]), reference_path=str(paths["reference"]),
                        onnx_path=str(onnx) if onnx else None, timing=FAST, threads=1, tolerance=LOOSE, **kwargs)


def no_gemms(job):
    return []


def test_the_order_reverses_from_cycle_to_cycle():
    assert [cycle_order(["a", "b", "c"], c) for c in range(3)] == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]


def test_a_job_survives_the_trip_to_its_worker():
    job = BenchmarkJob(hardware=CPU, model="m", variant="ort-int8", batch_size=4, sequence_length=32, model_dir="d",
                       reference_path="r.npz", onnx_path="x.onnx", timing=FAST, tolerance=LOOSE, check_parity=False)
    assert BenchmarkJob.from_dict(json.loads(json.dumps(asdict(job)))) == job


@pytest.mark.parametrize("fields, message", [
    ({"processes": 4, "max_processes": 3}, "processes"),
    ({"cycles": 1}, "cycles"),
    ({"target_interval": 0.0}, "target_interval"),
])
def test_a_design_that_cannot_work_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Design(**fields)


# --- The real workers, on the tiny model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(tiny_exports):
    paths = tiny_exports["distilbert"]
    jobs = (_job(paths, "pytorch"), _job(paths, "onnx-fp32", paths["onnx"]), _job(paths, "ort-fp32", paths["onnx"]))
    return run_comparison(Comparison(jobs=jobs, design=SMALL, config_for_hash={"k": 1}), time_gemms=no_gemms)


def test_every_variant_is_timed_in_fresh_processes_one_block_per_cycle_in_alternating_order(comparison):
    names = ["pytorch", "onnx-fp32", "ort-fp32"]
    for name in names:
        processes = comparison["variants"][name]["processes"]
        assert [p["process"] for p in processes] == [0, 1]
        for process in processes:
            assert [b["cycle"] for b in process["blocks"]] == [0, 1, 2]
            assert [b["position"] for b in process["blocks"]] == [cycle_order(names, c).index(name) for c in range(3)]
            assert all(len(b["latencies_ms"]) == process["calls_per_block"] for b in process["blocks"])
        # Parity is checked by the first process only; each process has its own canary and its own pid.
        assert processes[0]["record"]["parity"]["min_token_cosine"] > 0.9999
        assert processes[1]["record"]["parity"] is None
        assert all(p["record"]["canary_ms"] > 0 for p in processes)
    stopping = comparison["stopping"]
    assert stopping["stopped_by"] in ("target", "max_processes") and stopping["processes"] == 2
    assert set(stopping["half_widths"]) == {"onnx-fp32", "ort-fp32"}  # every variant against the baseline


def test_pytorch_processes_are_forked_from_the_zygote_and_onnx_runtime_ones_start_fresh(comparison):
    """A forked process carries the zygote's torch: ONNX Runtime's do not import it, so they start fresh (their
    peak memory stays their own)."""
    forked = {name: [p["forked"] for p in v["processes"]] for name, v in comparison["variants"].items()}
    assert forked == {"pytorch": [True, True], "onnx-fp32": [False, False], "ort-fp32": [False, False]}
    assert comparison["stopping"]["zygote_import_s"] > 0


def test_idle_workers_cost_the_timed_one_nothing(comparison):
    """While one worker times its block the others are stopped: the scheduler's count of their CPU time does
    not move (a worker's ONNX Runtime threads would otherwise spin on after its own block)."""
    blocks = [b for v in comparison["variants"].values() for p in v["processes"] for b in p["blocks"]]
    idle = [b["idle_workers_cpu_s"] for b in blocks]
    assert None not in idle and max(idle) < 0.002, idle


def test_a_variant_result_summarizes_its_processes(comparison):
    result = variant_result(comparison, "ort-fp32")
    per_process = result["round_latencies_ms"]
    assert len(per_process) == result["processes"] == 2 and result["blocks"] == 6
    assert result["iterations"] == sum(len(p) for p in per_process) == 6 * result["calls_per_block"]
    assert [[len(b) for b in p] for p in result["block_latencies_ms"]] == [[result["calls_per_block"]] * 3] * 2
    assert result["p50_ci_low_ms"] <= result["p50_ms"] <= result["p50_ci_high_ms"]
    assert result["comparison"]["id"] == comparison["comparison_id"]
    assert result["parity"]["min_token_cosine"] > 0.9999 and result["environment"]["fingerprint"]["id"]
    assert result["quiet"]["idle_workers_cpu_share"] < 0.05 and result["quiet"]["canary_spread"] >= 1.0
    assert result["design_costs"]["load_s"] > 0 and result["design_costs"]["cycle_s"] > 0
    assert result["stopped_by"] == comparison["stopping"]["stopped_by"]
    json.dumps(result)


def test_a_variant_that_fails_is_left_out_of_later_processes_and_the_others_go_on(tiny_exports):
    paths = tiny_exports["distilbert"]
    impossible = Tolerance(max_abs_diff=0.0, min_cosine=0.99)  # no export matches PyTorch to the last bit
    jobs = (_job(paths, "onnx-fp32", paths["onnx"]),
            replace(_job(paths, "ort-fp32", paths["onnx"]), tolerance=impossible))
    record = run_comparison(Comparison(jobs=jobs, design=SMALL), time_gemms=no_gemms)
    failed = record["variants"]["ort-fp32"]["failed"]
    assert failed["status"] == "failed" and failed["failure_kind"] == "DriftError"
    assert "ort-fp32 on cpu diverges from PyTorch FP32: max abs diff" in failed["failure"]
    assert len(record["variants"]["onnx-fp32"]["processes"]) == 2


def test_a_failed_variant_fails_alone_with_a_marker_or_is_recorded(tiny_exports, tmp_path):
    paths = tiny_exports["distilbert"]
    jobs = (_job(paths, "onnx-fp32", paths["onnx"]),
            replace(_job(paths, "ort-fp32", paths["onnx"]), tolerance=Tolerance(max_abs_diff=0.0, min_cosine=0.99)))
    source = tmp_path / "results/cpu/tiny/rounds/b2_s16.json"
    one = replace(SMALL, processes=1, max_processes=1, cycles=2)
    write_json_atomic(source, run_comparison(Comparison(jobs=jobs, design=one), time_gemms=no_gemms))
    bench = tmp_path / "results/cpu/tiny/bench"
    write_variant_result(source, bench / "onnx-fp32/b2_s16.json", "onnx-fp32")
    assert read_json(bench / "onnx-fp32/b2_s16.json")["status"] == "ok"
    with pytest.raises(VariantFailedError, match="diverges from PyTorch FP32.*delete that marker"):
        write_variant_result(source, bench / "ort-fp32/b2_s16.json", "ort-fp32")
    assert not (bench / "ort-fp32/b2_s16.json").exists()
    assert read_json(tmp_path / "results/cpu/tiny/failed/ort-fp32/b2_s16.json")["status"] == "failed"
    write_variant_result(source, bench / "ort-fp32/b2_s16.json", "ort-fp32", on_failure="record")
    assert read_json(bench / "ort-fp32/b2_s16.json")["failure_kind"] == "DriftError"


def test_a_worker_that_crashes_stops_the_comparison_with_its_log(tiny_exports, tmp_path):
    paths = tiny_exports["distilbert"]
    not_onnx = tmp_path / "broken.onnx"
    not_onnx.write_bytes(b"not a model")
    log = tmp_path / "comparison.log"
    with pytest.raises(WorkerError, match=rf"timing ort-fp32 at batch 2, sequence 16 exited with code 1; its "
                                          rf"traceback is in {log}"):
        run_comparison(Comparison(jobs=(_job(paths, "ort-fp32", not_onnx),), design=SMALL), log_path=str(log),
                       time_gemms=no_gemms)
    assert "Traceback" in log.read_text()


# --- The stopping rule, on fake workers of known variance ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def undisturbed(now: float) -> bool:
    return True


class FakeWorker:
    """A variant's process with a known latency: `ms` times the process's own factor, the same every call,
    times `disturbed_factor` while `host_undisturbed(clock)` says the host is disturbed (when its probe, 8 ms
    undisturbed, reads 10% slower). Loading costs `load_s` of the fake clock (the workers of a generation load
    one after the other here), a block sizes at 4 calls, each call costs its latency."""

    def __init__(self, clock: FakeClock, ms: float, factor: float, load_s: float,
                 host_undisturbed=undisturbed, disturbed_factor: float = 1.0) -> None:
        self.clock, self.ms, self.load_s = clock, ms * factor, load_s
        self.host_undisturbed, self.disturbed_factor = host_undisturbed, disturbed_factor
        self.pending = None

    def send(self, message):
        self.pending = message

    def receive(self):
        message, self.pending = self.pending, None
        if message["op"] == "load":
            self.clock.now += self.load_s
            record = {"status": "ok", "batch_size": 2, "flops_per_batch": 1.0, "canary_ms": 1.0, "environment": {}}
            return {"status": "ok", "record": record}
        calm = self.host_undisturbed(self.clock.now)
        if message["op"] == "probe":
            self.clock.now += 0.04
            return {"status": "ok", "probe_ms": 8.0 if calm else 8.8}
        ms = self.ms if calm else self.ms * self.disturbed_factor
        calls = 4 if message["op"] == "size" else message["calls"]
        self.clock.now += calls * ms / 1000.0
        if message["op"] == "size":
            return {"status": "ok", "calls_per_block": 4}
        return {"status": "ok", "latencies_ms": [ms] * calls, "quiet": {"wall_s": 0.01}}

    def ask(self, message):
        self.send(message)
        return self.receive()

    def cpu_seconds(self):
        return 0.0

    def pause(self):
        pass

    def resume(self):
        pass

    def close(self):
        return {}


def fake_comparison(design: Design, process_factor, load_s: float = 1.0, host_undisturbed=undisturbed,
                    disturbed_factor: float = 1.0):
    """Baseline at 10 ms in every process; the variant at 5 ms times process_factor(g) in its g-th process, and
    times disturbed_factor while host_undisturbed(clock) is False."""
    clock, started = FakeClock(), {"pytorch": 0, "onnx-fp32": 0}

    def start(job: BenchmarkJob, label: str) -> FakeWorker:
        name = job.variant
        generation = started[name]
        started[name] += 1
        if name == "pytorch":
            return FakeWorker(clock, 10.0, 1.0, load_s, host_undisturbed)
        return FakeWorker(clock, 5.0, process_factor(generation), load_s, host_undisturbed, disturbed_factor)

    paths = {"model_dir": "m", "reference": "r.npz"}
    jobs = (_job(paths, "pytorch"), _job(paths, "onnx-fp32", "x.onnx"))
    return run_comparison(Comparison(jobs=jobs, design=design), start_worker=start, clock=clock, time_gemms=no_gemms)


def predicted_processes(log_effects: list[float], target: float, least: int) -> int:
    """The first count of processes whose t interval over the per-process log ratios is within +-target."""
    for count in range(least, len(log_effects) + 1):
        values = np.array(log_effects[:count])
        half = student_t.ppf(0.975, count - 1) * values.std(ddof=1) / math.sqrt(count)
        if math.exp(half) - 1 <= target:
            return count
    raise AssertionError("the target is out of reach of these effects")


def test_a_measurement_of_known_variance_stops_at_the_predicted_process_count():
    # Each process of the variant runs 2% fast or 2% slow, alternately: a process-level spread of known size.
    effects = [0.02 if g % 2 == 0 else -0.02 for g in range(20)]
    design = Design(processes=3, max_processes=20, cycles=3, target_interval=0.03, time_budget_s=1e6)
    expected = predicted_processes([-e for e in effects], 0.03, 3)
    record = fake_comparison(design, lambda g: math.exp(effects[g]))
    stopping = record["stopping"]
    assert stopping["stopped_by"] == "target" and stopping["reached_target"]
    assert stopping["processes"] == expected == 5
    result = variant_result(record, "onnx-fp32")
    assert result["processes"] == 5 and result["reached_target"] is True
    # A tighter target needs more processes: the count follows the variance, not a constant.
    tighter = fake_comparison(replace(design, target_interval=0.025), lambda g: math.exp(effects[g]))
    assert tighter["stopping"]["processes"] == predicted_processes([-e for e in effects], 0.025, 3) > 5


def test_a_measurement_that_cannot_reach_the_target_stops_at_the_budget_and_says_so():
    # The variant's processes disagree by 30%: no handful of processes pins the speedup to +-3%.
    design = Design(processes=3, max_processes=50, cycles=4, target_interval=0.03, time_budget_s=60.0)
    record = fake_comparison(design, lambda g: 1.3 if g % 2 else 1.0, load_s=5.0)
    stopping = record["stopping"]
    assert stopping["stopped_by"] == "budget" and not stopping["reached_target"]
    assert stopping["elapsed_s"] <= 60.0  # never a longer run than its budget
    # Each generation costs 2 loads (10 s) and 4 cycles of 60 ms: five fit, a sixth would not.
    assert stopping["processes"] == 5 and stopping["half_widths"]["onnx-fp32"] > 0.03
    result = variant_result(record, "onnx-fp32")
    assert result["reached_target"] is False and result["stopped_by"] == "budget"


def test_a_progress_line_says_how_far_the_intervals_are_from_the_target():
    line = progress_line("m batch 32, sequence 128 (7 variants)", 2, Design(time_budget_s=120), 0.041, 70.0)
    assert line == ("m batch 32, sequence 128 (7 variants): 2 processes per variant, widest interval +-4.1% "
                    "(target +-3%), 1 min 10 s of 2 min 0 s")
    assert "widest interval not yet known" in progress_line("m", 1, Design(), float("inf"), 5.0)


def test_a_slow_shape_gets_fewer_cycles_so_that_its_processes_fit_the_budget():
    from inference_bench.measure.rounds import planned_cycles

    design = Design(processes=3, cycles=4, time_budget_s=120.0)
    # Batch 32 on 2 cores: 30 s to load and warm a generation, 8 s a cycle: 4 cycles each would leave room for two
    # generations only; two cycles each let three fit (3 x 46 s > 120 still: the last one is cut at the budget).
    assert planned_cycles(design, 0, elapsed_s=0.0, load_s=30.0, cycle_s=8.0) == 2
    assert planned_cycles(design, 0, elapsed_s=0.0, load_s=10.0, cycle_s=1.5) == 4  # batch 1: room enough
    assert planned_cycles(design, 2, elapsed_s=80.0, load_s=10.0, cycle_s=8.0) == 3  # the last of the three
    assert planned_cycles(design, 3, elapsed_s=100.0, load_s=10.0, cycle_s=8.0) == 4  # beyond: the budget cuts it
    # A later generation takes a single cycle where that is what fits (the first keeps two).
    assert planned_cycles(design, 1, elapsed_s=40.0, load_s=30.0, cycle_s=8.0) == 1
    assert planned_cycles(design, 0, elapsed_s=0.0, load_s=60.0, cycle_s=8.0) == 2


def test_cycles_the_host_disturbed_are_left_out_of_the_speedup_and_counted():
    """The variant runs 25% slower while the host is disturbed (every other 10 s of the fake clock), and the
    probe reads 10% slower then: the speedup is the undisturbed one (2.0 exactly), and the record says what
    share of cycles were left out."""
    design = Design(processes=3, max_processes=8, cycles=3, target_interval=0.03, time_budget_s=1e6,
                    undisturbed_only=True)

    def calm(now: float) -> bool:
        return int(now // 10) % 2 == 0

    record = fake_comparison(design, lambda g: 1.0, load_s=2.0, host_undisturbed=calm, disturbed_factor=1.25)
    host = record["stopping"]["host"]
    assert host["counted"] == "undisturbed cycles" and 0 < host["disturbed_share"] < 1
    assert host["probe_undisturbed_ms"] == 8.0
    result = variant_result(record, "onnx-fp32")
    estimate = speedup_estimates({n: v["processes"] for n, v in record["variants"].items()}, "pytorch",
                                 design.max_host_slowdown, undisturbed_only=True)["onnx-fp32"]
    assert estimate.value == pytest.approx(2.0, rel=1e-12)
    # Counting every cycle would have mixed in the disturbed ones.
    everything = speedup_estimates({n: v["processes"] for n, v in record["variants"].items()}, "pytorch",
                                   design.max_host_slowdown)
    assert everything["onnx-fp32"].value < 1.95
    # By default the speedups count every cycle, and the record says how much of them the host disturbed.
    default = fake_comparison(replace(design, undisturbed_only=False), lambda g: 1.0, load_s=2.0,
                              host_undisturbed=calm, disturbed_factor=1.25)["stopping"]["host"]
    assert default["counted"] == "every cycle" and 0 < default["disturbed_share"] < 1
    assert result["host"]["disturbed_cycles"] == host["disturbed_cycles"]
    assert sum(map(len, host["disturbed_cycles"])) == sum(len(p["blocks"]) for p in
                                                          record["variants"]["pytorch"]["processes"])


def test_a_host_disturbed_throughout_counts_every_cycle_and_says_so():
    design = Design(processes=3, max_processes=3, cycles=3, target_interval=0.03, time_budget_s=1e6,
                    undisturbed_only=True)

    def calm(now: float) -> bool:  # undisturbed while the first generation is timed only (a third of the probes)
        return now < 3.0

    record = fake_comparison(design, lambda g: 1.0, host_undisturbed=calm, disturbed_factor=1.25)
    host = record["stopping"]["host"]
    undisturbed = [sum(not flag for flag in process) for process in host["disturbed_cycles"]]
    assert undisturbed[0] > 0 and undisturbed[1:] == [0, 0]
    assert host["counted"] == "every cycle"  # one process is too few to count its cycles alone


def test_without_host_probes_every_cycle_counts():
    design = Design(processes=2, max_processes=2, cycles=3, time_budget_s=1e6, max_host_slowdown=0.0)
    record = fake_comparison(design, lambda g: 1.0)
    assert record["stopping"]["host"]["counted"] == "unprobed"
    assert "host_probes_ms" not in record["variants"]["pytorch"]["processes"][0]


def test_the_baseline_process_probes_the_host_around_every_cycle(comparison):
    """The real worker times the probe: one before each cycle and one after the last, in the baseline's process."""
    for process in comparison["variants"]["pytorch"]["processes"]:
        assert len(process["host_probes_ms"]) == len(process["blocks"]) + 1
        assert all(0 < ms < 1000 for ms in process["host_probes_ms"])
    assert all("host_probes_ms" not in p for p in comparison["variants"]["onnx-fp32"]["processes"])
    assert comparison["stopping"]["host"]["counted"] in ("undisturbed cycles", "every cycle")


@pytest.mark.parametrize("budget_s, cycles", [(1.6, [2, 2, 2]), (1.45, [2, 2, 1]), (1.35, [2, 1, 1]), (1.2, [2, 1])])
def test_a_budget_too_short_for_another_generation_of_two_cycles_gets_one_of_a_single_cycle(budget_s, cycles):
    """Each generation here costs 0.26 s to load and 0.1 s a cycle (and 0.04 s for its last host probe): after two
    generations of two cycles (1.0 s), a budget of 1.45 s holds a third generation's loading and one cycle, not
    two; a third process is what the intervals count (the t quantile of 2 processes is 12.7, of 3 4.3). The first
    generation keeps two cycles, whatever the budget."""
    design = Design(processes=3, max_processes=3, cycles=2, time_budget_s=budget_s)
    record = fake_comparison(design, lambda g: 1.0, load_s=0.1)
    assert [len(p["blocks"]) for p in record["variants"]["onnx-fp32"]["processes"]] == cycles
    assert record["stopping"]["elapsed_s"] <= design.time_budget_s
