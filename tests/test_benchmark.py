import json

import numpy as np
import pytest

from inference_bench.artifacts import write_json_atomic
from inference_bench.measure.run import BenchmarkJob, run_benchmark
from inference_bench.measure.timing import TimingSettings, latency_statistics, time_calls, warm_up
from inference_bench.hardware import HardwareMismatchError, HardwareTag, runs_here
from inference_bench.variants import VARIANTS

FAST = TimingSettings(warmup_iterations=1, min_iterations=4, min_duration_s=0.05)
CPU = HardwareTag(name="cpu", device="cpu", description="test CPU")
RESULT_FIELDS = {
    "hardware", "model", "variant", "batch_size", "sequence_length", "threads", "iterations", "mean_ms", "p50_ms",
    "p90_ms", "p95_ms", "p99_ms", "std_ms", "throughput_seq_per_s", "peak_rss_bytes", "peak_gpu_memory_bytes",
    "model_bytes", "parity", "latencies_ms", "environment",
}
ENV_FIELDS = {"versions", "cpu_model", "threads", "git_commit", "date", "onnxruntime_providers", "config_hash"}


def _job(paths, variant, onnx=None, **kwargs):
    return BenchmarkJob(
        hardware=kwargs.pop("hardware", CPU), model="tiny", variant=variant, batch_size=2, sequence_length=16,
        model_dir=str(paths["model_dir"]), reference_path=str(paths["reference"]),
        onnx_path=str(onnx) if onnx else None, timing=FAST, threads=1, **kwargs,
    )


@pytest.mark.parametrize("variant", ["pytorch", "onnx-fp32"])
def test_benchmark_record_has_every_field_and_sane_values(tiny_exports, variant):
    paths = tiny_exports["distilbert"]
    record = run_benchmark(_job(paths, variant, paths["onnx"] if variant != "pytorch" else None),
                           config_for_hash={"k": 1})
    assert RESULT_FIELDS <= set(record)
    assert ENV_FIELDS <= set(record["environment"])
    assert record["iterations"] == len(record["latencies_ms"]) >= FAST.min_iterations
    assert 0 < record["min_ms"] <= record["p50_ms"] <= record["p90_ms"] <= record["p99_ms"] <= record["max_ms"]
    assert record["throughput_seq_per_s"] == pytest.approx(2000 / record["mean_ms"])
    assert record["peak_rss_bytes"] > 10e6
    assert record["peak_gpu_memory_bytes"] is None
    assert record["model_bytes"] > 1e6
    assert record["parity"]["min_token_cosine"] > 0.9999
    assert record["threads"] == 1
    json.dumps(record)  # serializable as written


def test_cuda_tag_without_a_gpu_refuses_before_measuring(tiny_exports):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    tag = HardwareTag(name="h100", device="cuda", gpu_name_contains="H100")
    with pytest.raises(HardwareMismatchError, match="'h100' needs a CUDA GPU.*--config hardware="):
        run_benchmark(_job(tiny_exports["bert"], "pytorch", hardware=tag))


def test_unknown_variant_is_refused(tiny_exports):
    with pytest.raises(ValueError, match="unknown variant 'onnx-int4'"):
        _job(tiny_exports["bert"], "onnx-int4")


def test_timing_stops_at_both_minimums_and_warm_up_is_apart():
    calls = []
    settings = TimingSettings(warmup_iterations=3, min_iterations=7, min_duration_s=0.0)
    warm_up(lambda: calls.append(1), settings)
    assert len(calls) == 3
    latencies = time_calls(lambda: calls.append(1), settings)
    assert len(latencies) == 7 and len(calls) == 10
    latencies = time_calls(lambda: None, TimingSettings(warmup_iterations=0, min_iterations=1, min_duration_s=0.05))
    assert len(latencies) > 1


def test_latency_statistics_on_known_samples():
    stats = latency_statistics([float(v) for v in range(1, 101)], batch_size=4)
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5)
    assert stats["std_ms"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats["throughput_seq_per_s"] == pytest.approx(4000 / 50.5)


def test_result_files_are_written_whole(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert not target.exists() and not list(tmp_path.iterdir())
    write_json_atomic(target, {"ok": np.float32(1.5)})
    assert json.loads(target.read_text()) == {"ok": 1.5}


@pytest.mark.gpu
def test_cuda_runners_time_on_device(tiny_exports, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from inference_bench.build.stages import fp16_stage, optimize_stage

    paths = tiny_exports["distilbert"]
    fused, fp16 = tmp_path / "ort-fp32.onnx", tmp_path / "ort-fp16.onnx"
    optimize_stage(paths["onnx"], fused, paths["model_dir"], paths["reference"], opt_level=0,
                   require_full_fusion=True, tolerance={"max_abs_diff": 1e-3, "min_cosine": 0.99999})
    fp16_stage(fused, fp16, paths["reference"], keep_io_types=True, op_block_list=[],
               tolerance={"max_abs_diff": 0.05, "min_cosine": 0.999})
    tag = HardwareTag(name="gpu", device="cuda")
    for variant, onnx in (("pytorch", None), ("pytorch-fp16", None), ("onnx-fp32", paths["onnx"]),
                          ("ort-fp16", fp16), ("ort-fp16-cudagraph", fp16)):
        record = run_benchmark(_job(paths, variant, onnx, hardware=tag))
        assert 0 < record["peak_gpu_memory_bytes"] < 2e9, variant  # allocations, not the CUDA context
        assert record["parity"]["min_token_cosine"] > 0.999, variant


def test_cuda_only_variants_are_refused_on_the_cpu(tiny_exports):
    with pytest.raises(ValueError, match="ort-fp16-cudagraph runs on cuda only, not cpu"):
        run_benchmark(_job(tiny_exports["bert"], "ort-fp16-cudagraph", tiny_exports["bert"]["onnx"]))
    with pytest.raises(ValueError, match="pytorch-fp16 runs on cuda only, not cpu"):
        run_benchmark(_job(tiny_exports["bert"], "pytorch-fp16"))


def test_the_gpu_name_picks_the_hardware_tag():
    import yaml

    from conftest import ROOT
    from inference_bench.measure.gpu_check import tag_for_gpu

    tags = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["hardware_tags"]
    assert tag_for_gpu("NVIDIA H100 80GB HBM3", tags) == "h100"
    assert tag_for_gpu("NVIDIA H200", tags) == "h200"
    assert tag_for_gpu("Tesla T4", tags) == "t4"
    with pytest.raises(SystemExit, match="no hardware tag names the GPU 'NVIDIA B200'"):
        tag_for_gpu("NVIDIA B200", tags)


def test_flops_of_distilbert_base_at_batch_1_sequence_128():
    from transformers import AutoConfig

    from inference_bench.measure.flops import encoder_flops
    from inference_bench.models import ArchitectureFacts

    facts = ArchitectureFacts.from_hf_config(AutoConfig.for_model("distilbert"))
    # 6 layers x 2 x 128 tokens x (4*768^2 + 2*128*768 + 2*768*3072): about 11.2 GFLOP.
    assert encoder_flops(facts, 1, 128) == 6 * 2 * 128 * (4 * 768**2 + 2 * 128 * 768 + 2 * 768 * 3072)
    assert encoder_flops(facts, 32, 128) == 32 * encoder_flops(facts, 1, 128)


@pytest.mark.parametrize("variant", ["pytorch-bf16", "pytorch-compile"])
def test_stronger_pytorch_baselines(tiny_exports, variant):
    if runs_here(VARIANTS[variant], "cpu"):
        pytest.skip(runs_here(VARIANTS[variant], "cpu"))
    record = run_benchmark(_job(tiny_exports["bert"], variant))
    assert record["variant"] == variant and record["p50_ms"] > 0
    assert record["parity"]["min_token_cosine"] > 0.99
    if variant == "pytorch-bf16":
        assert record["model_bytes"] < 0.6 * run_benchmark(_job(tiny_exports["bert"], "pytorch"))["model_bytes"]


def test_bf16_is_refused_on_a_cpu_without_bf16(tiny_exports, monkeypatch):
    import inference_bench.hardware

    monkeypatch.setattr(inference_bench.hardware, "cpu_flags", lambda: ["avx2"])
    with pytest.raises(ValueError, match="pytorch-bf16 needs a CPU with avx512_bf16 or amx_bf16"):
        run_benchmark(_job(tiny_exports["bert"], "pytorch-bf16"))


def test_a_tag_remembers_its_machine_and_refuses_another(tmp_path):
    import json

    from inference_bench.hardware import MachineChangedError, check_machine, machine_fingerprint

    recorded = tmp_path / "machine.json"
    first = check_machine("cpu", "cpu", recorded, replace=False)
    assert first == machine_fingerprint("cpu") == json.loads(recorded.read_text())
    assert check_machine("cpu", "cpu", recorded, replace=False)["id"] == first["id"]  # same machine: fine
    # Another machine, by construction: every field differs from this one's, whatever this one is.
    family, cores = str(int(first["cpu_family"] or 0) + 1), first["logical_cpus"] * 2
    other = {**first, "id": "0" * 12 if first["id"] != "0" * 12 else "1" * 12, "cpu_family": family,
             "logical_cpus": cores}
    recorded.write_text(json.dumps(other))
    with pytest.raises(MachineChangedError, match=rf"cpu_family '{family}' there, .* here, logical_cpus {cores} there"):
        check_machine("cpu", "cpu", recorded, replace=False)
    assert json.loads(recorded.read_text()) == other  # refused: nothing rewritten
    assert check_machine("cpu", "cpu", recorded, replace=True)["id"] == first["id"]
    assert json.loads(recorded.read_text())["id"] == first["id"]


def test_the_quiet_check_sees_a_busy_neighbour():
    import subprocess
    import sys
    import time

    from inference_bench.measure.quiet import QuietCheck, canary_ms

    assert 0 < canary_ms(size=64, repeats=5) < 1000
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with QuietCheck() as busy:
            time.sleep(1.0)
    finally:
        neighbour.kill()
    report = busy.report
    if report.other_cpu_s is None:
        pytest.skip("/proc/stat is not readable here")
    assert report.other_cpu_s > 0.5  # one core busy for a second, seen from outside that process
    assert report.other_cpu_share > 0.5 / (__import__("os").cpu_count() or 1)


@pytest.mark.parametrize(("shares", "retried", "noisy"), [((0.02,), False, False), ((0.5, 0.05), True, False),
                                                           ((0.5, 0.4), True, True)])
def test_a_noisy_timing_is_retried_once_and_recorded(tiny_exports, monkeypatch, shares, retried, noisy):
    import inference_bench.measure.run as run
    from inference_bench.measure.quiet import QuietReport

    seen = iter(shares)

    class FakeCheck:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.report = QuietReport(1.0, 0.1, 0.0, next(seen), None)

    monkeypatch.setattr(run, "QuietCheck", FakeCheck)
    record = run_benchmark(_job(tiny_exports["bert"], "onnx-fp32", tiny_exports["bert"]["onnx"]))
    quiet = record["quiet"]
    assert (quiet["retried"], quiet["noisy"], quiet["other_cpu_share"]) == (retried, noisy, shares[-1])
    assert quiet["canary_ms"] > 0
