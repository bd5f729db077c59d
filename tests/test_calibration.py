import pytest

from inference_bench.calibration import measure_matmul_peaks, peak_by_precision
from inference_bench.hardware import runs_here
from inference_bench.variants import VARIANTS


def test_cpu_matmul_peaks_for_each_engine_and_precision():
    measurements = measure_matmul_peaks("cpu", threads=1, sizes=[64, 128], repeats=3)
    assert {m["size"] for m in measurements} == {64, 128}
    measured = {(m["engine"], m["precision"]) for m in measurements}
    expected = {("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32")}
    if runs_here(VARIANTS["pytorch-bf16"], "cpu") is None:
        expected.add(("torch", "bf16"))
    assert measured == expected
    for entry in measurements:
        assert entry["gflops"] == pytest.approx(2 * entry["size"] ** 3 / entry["median_s"] / 1e9)
        assert entry["gflops"] > 0.1
    peaks = peak_by_precision(measurements)
    assert peaks["fp32"] == max(m["gflops"] for m in measurements if m["precision"] == "fp32")

