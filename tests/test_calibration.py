import pytest

from inference_bench.measure.calibration import measure_matmul_peaks, peak_by_precision
from inference_bench.hardware import runs_here
from inference_bench.variants import VARIANTS


def test_cpu_matmul_peaks_for_each_engine_and_precision():
    measurements = measure_matmul_peaks("cpu", threads=1, sizes=[64, 128], budget_s=0.01)
    assert {m["size"] for m in measurements} == {64, 128}
    measured = {(m["engine"], m["precision"]) for m in measurements}
    expected = {("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32")}
    if runs_here(VARIANTS["pytorch-bf16"], "cpu") is None:
        expected.add(("torch", "bf16"))
    assert measured == expected
    for entry in measurements:
        assert entry["gflops"] == pytest.approx(2 * entry["size"] ** 3 / entry["best_s"] / 1e9)
        assert entry["gflops"] > 0.1
    peaks = peak_by_precision(measurements)
    assert peaks["fp32"] == max(m["gflops"] for m in measurements if m["precision"] == "fp32")



def test_the_model_own_products_are_timed_per_engine_and_precision():
    from inference_bench.measure.calibration import measure_gemms
    from inference_bench.measure.flops import model_gemms
    from inference_bench.models import ArchitectureFacts

    facts = ArchitectureFacts(model_type="bert", num_layers=2, num_heads=2, hidden_size=32, intermediate_size=64,
                              max_positions=64, vocab_size=100, pad_token_id=0)
    gemms = model_gemms(facts, 2, 8)
    measured = measure_gemms("cpu", threads=1, gemms=gemms, budget_s=0.01)
    names = {(m["engine"], m["precision"], m["gemm"]) for m in measured}
    # INT8 multiplies the weights only: the INT8 variants keep the attention products in FP32.
    assert ("onnxruntime", "int8", "projection") in names and ("onnxruntime", "int8", "attention_scores") not in names
    assert {("onnxruntime", "fp32", g.name) for g in gemms} <= names and {("torch", "fp32", g.name) for g in gemms} <= names
    scores = next(m for m in measured if m["gemm"] == "attention_scores" and m["engine"] == "onnxruntime")
    assert (scores["batch"], scores["m"], scores["k"], scores["n"]) == (2 * 2, 8, 16, 8)  # B x heads of S x d x S
    for entry in measured:
        assert entry["gflops"] == pytest.approx(
            2 * entry["batch"] * entry["m"] * entry["k"] * entry["n"] / entry["best_s"] / 1e9)


def test_memory_roofs_read_and_triad_from_memory_and_cache(monkeypatch):
    from inference_bench.measure import calibration

    sizes = []
    real = calibration.measure_bandwidth

    def small(device, threads, array_bytes, budget_s=1.0):
        sizes.append(array_bytes)
        return real(device, threads, 2**20, budget_s=0.01)  # keep the test fast; the sizes asked are checked

    monkeypatch.setattr(calibration, "measure_bandwidth", small)
    monkeypatch.setattr(calibration, "last_level_cache_bytes", lambda device: 32 * 2**20)
    roofs = calibration.measure_memory_roofs("cpu", threads=1)
    assert sizes == [256 * 2**20, 32 * 2**20 // 6]  # 8 x the cache (256 MiB at least), then half the cache in 3
    for level in ("memory", "cache"):
        assert roofs[level]["roof_gbs"] == max(roofs[level]["triad_gbs"], roofs[level]["read_gbs"]) > 0
    monkeypatch.setattr(calibration, "last_level_cache_bytes", lambda device: None)
    assert "cache" not in calibration.measure_memory_roofs("cpu", threads=1)


def test_theoretical_peak_from_cores_lanes_and_clock(monkeypatch):
    from inference_bench.measure import calibration

    fields = {"vendor_id": "AuthenticAMD", "cpu family": "26", "flags": "fpu avx2 fma avx512f avx512_vnni avx512_bf16",
              "cpu MHz": "2500.000"}
    monkeypatch.setattr(calibration, "_cpuinfo_field", fields.get)
    monkeypatch.setattr(calibration, "_physical_cores", lambda: 4)
    monkeypatch.setattr(calibration, "_clock_ghz", lambda: (2.5, "test clock"))
    peaks = calibration.theoretical_peaks("cpu", threads=2)
    # Zen 5: two 512-bit FMA pipes = 64 FP32 FLOP/cycle; 2 of the 4 cores are used: 2 x 64 x 2.5 = 320.
    assert peaks["cores"] == 2 and peaks["peak_gflops"] == {"fp32": 320.0, "int8": 1280.0, "bf16": 640.0}
    fields["cpu family"] = "25"  # Zen 4: 256-bit pipes
    assert calibration.theoretical_peaks("cpu", threads=2)["peak_gflops"]["fp32"] == 160.0
    fields["vendor_id"] = "SomeoneElse"
    assert calibration.theoretical_peaks("cpu", threads=2) is None
    assert calibration.theoretical_peaks("cuda", threads=2) is None


def test_a_calibration_that_makes_no_physical_sense_is_named_and_its_roofs_refused():
    from inference_bench.measure.calibration import implausible_roofs, without_implausible_roofs

    roofs = {"last_level_cache_bytes": 32 * 2**20, "memory": {"roof_gbs": 27.6}, "cache": {"roof_gbs": 2.5}}
    problems = implausible_roofs(roofs)
    assert problems == {
        "cache": "the cache roof measured 2.5 GB/s, below the memory roof of 27.6 GB/s, and no cache is slower "
                 "than the memory behind it"}
    kept = without_implausible_roofs(roofs, problems)
    assert "cache" not in kept and kept["memory"]["roof_gbs"] == 27.6
    assert implausible_roofs({**roofs, "cache": {"roof_gbs": 180.0}}) == {}
    assert implausible_roofs({"memory": {"roof_gbs": 27.6}}) == {}  # no cache measured: nothing to compare
