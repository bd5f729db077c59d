"""Comparisons: every variant timed in interleaved rounds, each round a fresh worker process."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from inference_bench.artifacts import read_json, write_json_atomic
from inference_bench.measure.rounds import (
    Comparison,
    VariantFailedError,
    WorkerError,
    round_orders,
    run_comparison,
    variant_result,
    write_variant_result,
)
from inference_bench.measure.run import BenchmarkJob
from inference_bench.measure.timing import TimingSettings
from inference_bench.hardware import HardwareTag
from inference_bench.build.parity import Tolerance

FAST = TimingSettings(warmup_iterations=1, min_iterations=4, min_duration_s=0.05)
CPU = HardwareTag(name="cpu", device="cpu", description="test CPU")
LOOSE = Tolerance(max_abs_diff=None, min_cosine=0.99)


def _job(paths, variant, onnx=None, **kwargs) -> BenchmarkJob:
    return BenchmarkJob(hardware=CPU, model="tiny", variant=variant, batch_size=2, sequence_length=16,
                        model_dir=str(paths["model_dir"]), reference_path=str(paths["reference"]),
                        onnx_path=str(onnx) if onnx else None, timing=FAST, threads=1, tolerance=LOOSE, **kwargs)


def test_the_order_reverses_from_round_to_round():
    assert round_orders(["a", "b", "c"], 3) == [["a", "b", "c"], ["c", "b", "a"], ["a", "b", "c"]]


def test_a_job_survives_the_trip_to_its_worker():
    job = BenchmarkJob(hardware=CPU, model="m", variant="ort-int8", batch_size=4, sequence_length=32, model_dir="d",
                       reference_path="r.npz", onnx_path="x.onnx", timing=FAST, tolerance=LOOSE, check_parity=False)
    from dataclasses import asdict

    assert BenchmarkJob.from_dict(json.loads(json.dumps(asdict(job)))) == job


@pytest.fixture(scope="module")
def comparison(tiny_exports):
    paths = tiny_exports["distilbert"]
    jobs = (_job(paths, "onnx-fp32", paths["onnx"]), _job(paths, "ort-fp32", paths["onnx"]))
    return run_comparison(Comparison(jobs=jobs, rounds=3, config_for_hash={"k": 1}))


def test_every_variant_is_timed_in_every_round_in_alternating_order(comparison):
    assert comparison["orders"] == [["onnx-fp32", "ort-fp32"], ["ort-fp32", "onnx-fp32"], ["onnx-fp32", "ort-fp32"]]
    for name in ("onnx-fp32", "ort-fp32"):
        rounds = comparison["variants"][name]["rounds"]
        assert [r["round"] for r in rounds] == [0, 1, 2]
        assert [r["position"] for r in rounds] == [comparison["orders"][i].index(name) for i in range(3)]
        # Parity is checked in the first round only; each round is its own process with its own canary.
        assert rounds[0]["parity"]["min_token_cosine"] > 0.9999 and rounds[1]["parity"] is None
        assert all(r["quiet"]["canary_ms"] > 0 for r in rounds)


def test_a_variant_result_summarizes_its_rounds(comparison):
    result = variant_result(comparison, "ort-fp32")
    rounds = result["round_latencies_ms"]
    assert len(rounds) == result["rounds"] == 3
    assert result["iterations"] == sum(len(r) for r in rounds) >= 3 * FAST.min_iterations
    assert result["p50_ci_low_ms"] <= result["p50_ms"] <= result["p50_ci_high_ms"]
    assert result["p50_ms"] == sorted(d["p50_ms"] for d in result["round_details"])[1]
    assert result["comparison"]["id"] == comparison["comparison_id"]
    assert result["parity"]["min_token_cosine"] > 0.9999 and result["environment"]["fingerprint"]["id"]
    assert result["quiet"]["retried"] >= 0 and result["quiet"]["canary_spread"] >= 1.0
    json.dumps(result)


def test_a_variant_that_fails_is_left_out_of_later_rounds_and_the_others_go_on(tiny_exports):
    paths = tiny_exports["distilbert"]
    impossible = Tolerance(max_abs_diff=0.0, min_cosine=0.99)  # no export matches PyTorch to the last bit
    jobs = (_job(paths, "onnx-fp32", paths["onnx"]),
            replace(_job(paths, "ort-fp32", paths["onnx"]), tolerance=impossible))
    record = run_comparison(Comparison(jobs=jobs, rounds=2))
    failed = record["variants"]["ort-fp32"]["failed"]
    assert failed["status"] == "failed" and failed["failure_kind"] == "DriftError"
    assert "ort-fp32 on cpu diverges from PyTorch FP32: max abs diff" in failed["failure"]
    assert len(record["variants"]["onnx-fp32"]["rounds"]) == 2


def test_a_failed_variant_fails_alone_with_a_marker_or_is_recorded(tiny_exports, tmp_path):
    paths = tiny_exports["distilbert"]
    jobs = (_job(paths, "onnx-fp32", paths["onnx"]),
            replace(_job(paths, "ort-fp32", paths["onnx"]), tolerance=Tolerance(max_abs_diff=0.0, min_cosine=0.99)))
    source = tmp_path / "results/cpu/tiny/rounds/b2_s16.json"
    write_json_atomic(source, run_comparison(Comparison(jobs=jobs, rounds=1)))
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
    with pytest.raises(WorkerError, match=rf"timing ort-fp32 \(round 1\) exited with code 1; its traceback is in {log}"):
        run_comparison(Comparison(jobs=(_job(paths, "ort-fp32", not_onnx),), rounds=2), log_path=str(log))
    assert "Traceback" in log.read_text()


def test_a_progress_line_says_how_far_and_how_long_is_left():
    from inference_bench.measure.rounds import progress_line

    line = progress_line("m batch 32, sequence 128 (7 variants)", 1, 3, 40.0)
    assert line == "m batch 32, sequence 128 (7 variants): round 1 of 3 done, 40 s, about 1 min 20 s left"
    assert progress_line("m", 3, 3, 130.4).endswith("round 3 of 3 done, 2 min 10 s, about 0 s left")
