"""Bad input stops with a message that names the cause and what to do; results already made stay."""

import shutil

import pytest

from inference_bench.artifacts import CorruptArtifactError
from inference_bench.measure.run import BenchmarkJob, run_benchmark
from inference_bench.measure.timing import TimingSettings
from inference_bench.hardware import HardwareTag
from inference_bench.build.stages import int8_stage, optimize_stage

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

    from inference_bench.build.stages import FusionError

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
    assert "allow_pickle=False" in (ROOT / "workflow/src/inference_bench/build/reference.py").read_text()


def test_a_model_broken_on_purpose_fails_the_benchmark_instead_of_timing_it(tiny_exports, tmp_path):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from inference_bench.artifacts import write_sidecar
    from inference_bench.measure.run import DriftError
    from inference_bench.build.parity import Tolerance

    paths = tiny_exports["bert"]
    model = onnx.load(str(paths["onnx"]))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)) if t.data_type == 1 else 0)
    broken = numpy_helper.to_array(weight).copy()
    broken.flat[::7] = np.nan
    weight.CopyFrom(numpy_helper.from_array(broken, weight.name))
    onnx.save(model, str(tmp_path / "broken.onnx"))
    write_sidecar(tmp_path / "broken.onnx", versions={}, stage="test")  # a consistent sidecar: only the numbers are wrong
    job = BenchmarkJob(HardwareTag("cpu"), "tiny", "onnx-fp32", 1, 8, str(paths["model_dir"]),
                       str(paths["reference"]), onnx_path=str(tmp_path / "broken.onnx"),
                       timing=TimingSettings(0, 1, 0.0), threads=1,
                       tolerance=Tolerance(max_abs_diff=None, min_cosine=-1.0))
    with pytest.raises(DriftError, match=r"onnx-fp32 on cpu diverges from PyTorch FP32: \d+ NaN/Inf"):
        run_benchmark(job)


def test_drift_past_the_tolerance_fails(tiny_exports):
    from inference_bench.measure.run import DriftError
    from inference_bench.build.parity import Tolerance

    paths = tiny_exports["bert"]
    job = BenchmarkJob(HardwareTag("cpu"), "tiny", "pytorch", 1, 8, str(paths["model_dir"]), str(paths["reference"]),
                       timing=TimingSettings(0, 1, 0.0), threads=1,
                       tolerance=Tolerance(max_abs_diff=1e-12, min_cosine=0.9))
    with pytest.raises(DriftError, match="max abs diff .* > 1e-12 allowed"):
        run_benchmark(job)


def _run_python(code: str, **kwargs):
    import subprocess
    import sys

    from conftest import ROOT

    preamble = f"import sys; sys.path.insert(0, {str(ROOT / 'workflow' / 'scripts')!r}); import _common\n"
    return subprocess.run([sys.executable, "-c", preamble + code], capture_output=True, text=True, **kwargs)


def test_a_job_error_with_a_cause_is_one_line_first_and_its_traceback_goes_to_the_log(tmp_path):
    log = tmp_path / "job.log"
    result = _run_python(
        "from _common import run_logged\n"
        "from inference_bench.models import ModelSourceError\n"
        "def main():\n"
        "    raise ModelSourceError('model x: cannot download it; use source: local')\n"
        f"run_logged(main, {str(log)!r})\n"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("model x: cannot download it; use source: local")
    assert "Traceback" in log.read_text() and "ModelSourceError" in log.read_text()


def test_a_memory_cap_too_small_to_load_the_engine_names_the_setting(tiny_exports):
    paths = tiny_exports["bert"]
    result = _run_python(
        "from inference_bench.measure.run import BenchmarkJob, run_benchmark, OutOfMemoryError\n"
        "from inference_bench.hardware import HardwareTag\n"
        f"job = BenchmarkJob(HardwareTag('cpu'), 'tiny', 'pytorch', 1, 8, {str(paths['model_dir'])!r},"
        f" {str(paths['reference'])!r}, memory_limit_mb=200)\n"
        "import resource\n"
        "before = resource.getrlimit(resource.RLIMIT_AS)\n"
        "try:\n"
        "    run_benchmark(job)\n"
        "except OutOfMemoryError as error:\n"
        "    print('OOM:', error)\n"
        "print('cap lifted:', resource.getrlimit(resource.RLIMIT_AS) == before)\n"
        "print('room after:', len(bytearray(400 * 2**20)) == 400 * 2**20)\n",
        timeout=120,
    )
    assert "OOM: benchmark.memory_limit_mb (200 MiB) is too low for pytorch to load its engine" in result.stdout, (
        result.stdout + result.stderr[-2000:])
    # The failure record is written after the job, in the same process: it must not run under the cap.
    assert "cap lifted: True" in result.stdout and "room after: True" in result.stdout, result.stdout


def test_an_unreadable_sidecar_is_named_in_aggregation(tmp_path):
    from inference_bench.report.aggregate import artifact_table
    from inference_bench.artifacts import UnreadableFileError

    sidecar = tmp_path / "ort-fp32.json"
    sidecar.write_text('{"file_bytes": 12, ')
    with pytest.raises(UnreadableFileError, match=r".*ort-fp32.json is not valid JSON.*delete it and rerun"):
        artifact_table([sidecar])


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_files_written_whole_respect_the_umask(tmp_path, umask):
    import os

    import numpy as np

    from inference_bench.artifacts import write_json_atomic, write_text_atomic
    from inference_bench.build.reference import save_reference

    old = os.umask(umask)
    try:
        write_json_atomic(tmp_path / "a.json", {"k": 1})
        write_text_atomic(tmp_path / "b.md", "text")
        save_reference(tmp_path / "reference.npz", {"input_ids": np.ones((1, 2), dtype=np.int64)}, np.ones((1, 2, 3)))
    finally:
        os.umask(old)
    for name in ("a.json", "b.md", "reference.npz"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md", "reference.npz"]  # no temp left


def test_damaged_files_are_found_and_set_aside(fused_copy, tmp_path):
    import json
    import os

    from inference_bench import integrity

    _, fused = fused_copy
    assert integrity.damaged_artifact(fused) is None
    stat = fused.stat()
    _truncate(fused)
    os.utime(fused, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the mtime says nothing changed
    damage = integrity.damaged_artifact(fused)
    assert damage is not None and "where its sidecar recorded" in damage.reason
    integrity.set_aside(damage)
    assert not fused.exists() and not fused.with_suffix(".json").exists()
    assert (tmp_path / "ort-fp32.onnx.damaged").exists() and (tmp_path / "ort-fp32.json.damaged").exists()

    result = tmp_path / "b1_s8.json"
    result.write_text(json.dumps({"status": "ok"})[:-3])
    assert integrity.damaged_json(result).reason == "not valid JSON"
    npz = tmp_path / "reference.npz"
    npz.write_bytes(b"PK\x03\x04 truncated")
    assert "not a readable .npz" in integrity.damaged_npz(npz).reason


def test_an_unfinished_model_download_is_set_aside_once_it_is_old(tiny_models, tmp_path):
    import os
    import time

    from inference_bench import integrity

    folder = tmp_path / "hf"
    shutil.copytree(tiny_models["bert"], folder)
    assert integrity.damaged_model_dir(folder) is None
    (folder / "manifest.json").unlink()
    assert integrity.damaged_model_dir(folder) is None  # may be a download in progress
    old = time.time() - integrity.UNFINISHED_AFTER_S - 1
    os.utime(folder, (old, old))
    assert "did not finish" in integrity.damaged_model_dir(folder).reason


def test_model_weights_changed_after_download_are_refused_before_loading(tiny_models, tmp_path):
    from inference_bench.models import ModelSourceError, load_torch_model

    folder = tmp_path / "hf"
    shutil.copytree(tiny_models["bert"], folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(8)  # same size, other values
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelSourceError, match=r"model.safetensors does not match the sha256 in .*manifest.json"):
        load_torch_model(folder)


def test_a_result_holding_another_jobs_numbers_is_refused(tmp_path):
    import json

    from conftest import record
    from inference_bench.report.aggregate import aggregate

    folder = tmp_path / "results" / "cpu" / "m" / "bench" / "pytorch"
    folder.mkdir(parents=True)
    (folder / "b1_s128.json").write_text(json.dumps(record("pytorch", 1, 10.0, seq=128) | {"model": "m"}))
    (folder / "b2_s128.json").write_text(json.dumps(record("pytorch", 1, 10.0, seq=128) | {"model": "m"}))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"b2_s128.json holds the result of another job \(batch_size 1\)"):
        aggregate(sorted(folder.glob("*.json")), [], out / "s.csv", out / "a.csv", out / "s.md", out / "e.json")


def test_a_folder_that_cannot_be_written_is_named(tmp_path):
    import os
    import subprocess

    from inference_bench.artifacts import UnwritableError, write_json_atomic

    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes anywhere but into an immutable folder
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a filesystem without chattr +i")
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(UnwritableError, match=r"cannot write .*locked/r.json: (Permission denied|Operation not permitted)"):
            write_json_atomic(folder / "r.json", {})
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
