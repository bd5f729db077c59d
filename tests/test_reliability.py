"""Bad input stops with a message that names the cause and what to do; results already made stay."""

import shutil

import pytest

from inference_bench.artifacts import CorruptArtifactError
from inference_bench.benchmark.run import BenchmarkJob, HardwareTag, run_benchmark
from inference_bench.benchmark.timing import TimingSettings
from inference_bench.stages import int8_stage, optimize_stage

FP32 = {"max_abs_diff": 1e-3, "min_cosine": 0.99999}


@pytest.fixture
def fused_copy(tiny_exports, tmp_path):
    """A fused model with its sidecar, in a folder of its own that the test may damage."""
    paths = tiny_exports["distilbert"]
    source = tmp_path / "onnx-fp32.onnx"
    shutil.copy(paths["onnx"], source)
    shutil.copy(paths["onnx"].with_suffix(".json"), source.with_suffix(".json"))
    fused = tmp_path / "ort-fp32.onnx"
    optimize_stage(source, fused, paths["model_dir"], paths["reference"], opt_level=0, require_full_fusion=True,
                   tolerance=FP32)
    return paths, fused


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_onnx_is_refused_by_the_next_stage(fused_copy, tmp_path):
    paths, fused = fused_copy
    _truncate(fused)
    with pytest.raises(CorruptArtifactError, match=r"ort-fp32.onnx does not match the sha256.*Delete ort-fp32.onnx"):
        int8_stage(fused, tmp_path / "ort-int8.onnx", paths["reference"], per_channel=True, reduce_range=False,
                   tolerance={"max_abs_diff": None, "min_cosine": 0.99})
    assert not (tmp_path / "ort-int8.onnx").exists()


def test_truncated_onnx_is_refused_by_the_benchmark(fused_copy):
    paths, fused = fused_copy
    _truncate(fused)
    job = BenchmarkJob(HardwareTag("cpu"), "tiny", "ort-fp32", 1, 8, str(paths["model_dir"]), str(paths["reference"]),
                       onnx_path=str(fused), timing=TimingSettings(0, 1, 0.0), threads=1)
    with pytest.raises(CorruptArtifactError, match="truncated or changed after it was built"):
        run_benchmark(job)


def test_unknown_model_type_stops_or_falls_back_as_configured(tiny_exports, tmp_path):
    import json

    from inference_bench.stages import FusionError

    paths = tiny_exports["distilbert"]
    model_dir = tmp_path / "hf"
    shutil.copytree(paths["model_dir"], model_dir)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["architecture"]["model_type"] = "mystery"
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FusionError, match="'mystery' has no ONNX Runtime fusion recipe.*require_full_fusion: false"):
        optimize_stage(paths["onnx"], tmp_path / "ort-fp32.onnx", model_dir, paths["reference"], opt_level=0,
                       require_full_fusion=True, tolerance=FP32)
    counts = optimize_stage(paths["onnx"], tmp_path / "ort-fp32.onnx", model_dir, paths["reference"], opt_level=0,
                            require_full_fusion=False, tolerance=FP32)
    assert counts == {}
    assert json.loads((tmp_path / "ort-fp32.json").read_text())["fused_operators"] == {}


def test_no_pickle_and_no_remote_code_anywhere_in_the_pipeline():
    """Loading a pickle (torch.load, pickle, numpy with allow_pickle) can run arbitrary code; so can a
    model's own Python. The pipeline reads safetensors, ONNX, JSON and plain .npz arrays only."""
    import re

    from conftest import ROOT

    sources = [*(ROOT / "workflow" / "src").rglob("*.py"), *(ROOT / "workflow" / "scripts").glob("*.py")]
    forbidden = re.compile(r"import pickle|pickle\.load|torch\.load|allow_pickle=True|trust_remote_code=True|"
                           r"use_safetensors=False")
    offenders = [f"{p.name}:{n}" for p in sources for n, line in enumerate(p.read_text().splitlines(), 1)
                 if forbidden.search(line)]
    assert offenders == []
    assert "allow_pickle=False" in (ROOT / "workflow/src/inference_bench/reference.py").read_text()


def test_a_model_broken_on_purpose_fails_the_benchmark_instead_of_timing_it(tiny_exports, tmp_path):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from inference_bench.artifacts import write_sidecar
    from inference_bench.benchmark.run import DriftError
    from inference_bench.parity import Tolerance

    paths = tiny_exports["bert"]
    model = onnx.load(str(paths["onnx"]))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == 1 else 0)
    broken = numpy_helper.to_array(weight).copy()
    broken.flat[::7] = np.nan
    weight.CopyFrom(numpy_helper.from_array(broken, weight.name))
    onnx.save(model, str(tmp_path / "broken.onnx"))
    write_sidecar(tmp_path / "broken.onnx", stage="test")  # a consistent sidecar: only the numbers are wrong
    job = BenchmarkJob(HardwareTag("cpu"), "tiny", "onnx-fp32", 1, 8, str(paths["model_dir"]),
                       str(paths["reference"]), onnx_path=str(tmp_path / "broken.onnx"),
                       timing=TimingSettings(0, 1, 0.0), threads=1,
                       tolerance=Tolerance(max_abs_diff=None, min_cosine=-1.0))
    with pytest.raises(DriftError, match=r"onnx-fp32 on cpu diverges from PyTorch FP32: \d+ NaN/Inf"):
        run_benchmark(job)


def test_drift_past_the_tolerance_fails(tiny_exports):
    from inference_bench.benchmark.run import DriftError
    from inference_bench.parity import Tolerance

    paths = tiny_exports["bert"]
    job = BenchmarkJob(HardwareTag("cpu"), "tiny", "pytorch", 1, 8, str(paths["model_dir"]), str(paths["reference"]),
                       timing=TimingSettings(0, 1, 0.0), threads=1,
                       tolerance=Tolerance(max_abs_diff=1e-12, min_cosine=0.9))
    with pytest.raises(DriftError, match="max abs diff .* > 1e-12 allowed"):
        run_benchmark(job)
