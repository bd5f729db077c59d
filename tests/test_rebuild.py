"""Real snakemake runs on a tiny config: what is missing or damaged is rebuilt, every job runs this checkout's
code, a changed local model is copied again, the README is redrawn from the summaries alone, and bad
config files stop with their file and line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import TINY_CONFIG, copy_project, make_project, snakemake

pytestmark = pytest.mark.e2e
MODEL = "tiny-distilbert"
ONNX = f"results/models/{MODEL}/onnx"
BENCH = f"results/cpu/{MODEL}/bench"
ROUNDS = f"results/cpu/{MODEL}/rounds"


@pytest.fixture(scope="module")
def finished(tiny_run, tmp_path_factory) -> Path:
    """The session's tiny run (conftest.tiny_run: the real snakemake from an empty project), copied for this
    module."""
    return copy_project(tiny_run.project, tmp_path_factory.mktemp("finished") / "project")


@pytest.fixture
def copy_of(finished, tmp_path) -> Path:
    """A copy of the finished run (mtimes kept) that a test may damage."""
    return copy_project(finished, tmp_path / "project")


def planned(project: Path, *args: str) -> dict[str, int]:
    text = snakemake(project, "--dry-run", *args).stdout
    counts = {}
    if "job" in text and "count" in text:
        table = text[text.index("job "):].split("\n\n")[0].splitlines()[2:]
        for line in table:
            name, count = line.split()
            counts[name] = int(count)
    counts.pop("total", None)
    return counts


def _truncate_keeping_mtime(path: Path) -> None:
    stat = path.stat()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


REPORT = {"aggregate": 1, "charts": 1, "readme": 1, "all": 1}
MEASURED = REPORT
#: Both comparisons timed again (4 variants, 2 batch sizes), and every result written from them.
COMPARED = {"benchmark": 2, "variant_result": 8, **REPORT}


def _corrupt_failure_marker(project: Path) -> None:
    (project / BENCH / "onnx-fp32/b2_s16.json").unlink()
    marker = project / f"results/cpu/{MODEL}/failed/onnx-fp32/b2_s16.json"
    marker.parent.mkdir(parents=True)
    marker.write_text("{oops")


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        pytest.param(lambda p: (p / BENCH / "ort-int8/b1_s16.json").unlink(), {"variant_result": 1, **MEASURED},
                     id="a benchmark result deleted: written again from its comparison"),
        pytest.param(lambda p: (p / ROUNDS / "b1_s16.json").unlink(), {"benchmark": 1, "variant_result": 4, **MEASURED},
                     id="a comparison deleted: timed again"),
        pytest.param(lambda p: (p / ONNX / "ort-int8.json").unlink(), {"quantize_int8": 1, **COMPARED}, id="a sidecar deleted"),
        pytest.param(lambda p: _truncate_keeping_mtime(p / ONNX / "ort-int8.onnx"),
                     {"quantize_int8": 1, **COMPARED}, id="an ONNX file truncated, its mtime kept"),
        pytest.param(lambda p: _truncate_keeping_mtime(p / BENCH / "pytorch/b2_s16.json"),
                     {"variant_result": 1, **MEASURED}, id="a result truncated, its mtime kept"),
        pytest.param(lambda p: _truncate_keeping_mtime(p / ROUNDS / "b2_s16.json"),
                     {"benchmark": 1, "variant_result": 4, **MEASURED}, id="a comparison truncated, its mtime kept"),
        pytest.param(lambda p: (p / f"results/models/{MODEL}/reference.npz").unlink(), {"reference_outputs": 1},
                     id="the reference deleted"),
        pytest.param(lambda p: shutil.rmtree(p / "images"), {"charts": 1, "readme": 1, "all": 1},
                     id="the charts deleted"),
        pytest.param(_corrupt_failure_marker, {"variant_result": 1, **MEASURED}, id="a failure marker that does not parse"),
    ],
)
def test_what_is_missing_or_damaged_is_rebuilt_by_a_plain_run(copy_of, damage, expected):
    assert planned(copy_of) == {}
    damage(copy_of)
    jobs = planned(copy_of)
    for rule, count in expected.items():
        assert jobs.get(rule) == count, jobs


def test_config_keys_merely_reordered_rerun_nothing(copy_of):
    config_file = copy_of / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    reordered = {key: config[key] for key in reversed(list(config))}
    reordered["models"] = [{key: m[key] for key in reversed(list(m))} for m in config["models"]]
    config_file.write_text(yaml.safe_dump(reordered, sort_keys=False))
    assert planned(copy_of) == {}


def test_a_change_to_the_measuring_code_measures_again(copy_of):
    module = copy_of / "workflow/src/inference_bench/measure/flops.py"
    module.write_text(module.read_text() + "\n# a change to the code that counts FLOPs\n")
    jobs = planned(copy_of)
    assert (jobs.get("benchmark"), jobs.get("variant_result"), jobs.get("calibrate")) == (2, 8, 1), jobs
    assert "export_onnx" not in jobs  # artifacts are not remade for it


def test_a_truncated_artifact_is_set_aside_and_rebuilt_whole(copy_of):
    from inference_bench.artifacts import file_sha256, read_json

    onnx = copy_of / ONNX / "ort-int8.onnx"
    _truncate_keeping_mtime(onnx)
    run = snakemake(copy_of)
    assert "is damaged" in run.stderr and "ort-int8.onnx.damaged" in run.stderr
    assert file_sha256(onnx) == read_json(onnx.with_suffix(".json"))["sha256"]
    assert (onnx.parent / "ort-int8.onnx.damaged").exists()
    assert planned(copy_of) == {}


def test_every_job_runs_the_code_of_its_own_checkout(tmp_path):
    """Another clone's package first on the path (as `pip install -e` of another clone puts it) must not be
    what a job imports."""
    other = tmp_path / "other-clone" / "inference_bench"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("raise ImportError('imported from the other clone')\n")
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project")
    env = {**os.environ, "PYTHONPATH": str(other.parent)}
    snakemake(project, f"results/models/{MODEL}/reference.npz", env=env)
    assert (project / f"results/models/{MODEL}/reference.npz").is_file()


def test_the_readme_is_redrawn_from_the_summaries_alone(copy_of):
    shutil.rmtree(copy_of / "results/models")  # what a fresh clone lacks: models and ONNX files are not in git
    for script in (copy_of / "workflow").rglob("*.py"):
        script.touch()  # a fresh clone's code is newer than its committed results
    summary = copy_of / f"results/cpu/{MODEL}/summary.csv"
    results = {p: p.stat().st_mtime_ns for p in (copy_of / "results/cpu").rglob("*.json")}
    assert planned(copy_of, "readme") == {"charts": 1, "readme": 1}
    snakemake(copy_of, "readme")
    assert {p: p.stat().st_mtime_ns for p in results} == results  # nothing measured or rewritten
    assert "| ort-int8 | 2 | 16 |" in (copy_of / "README.md").read_text()
    summary.unlink()
    failed = snakemake(copy_of, "readme", check=False)
    assert failed.returncode != 0
    assert "run `snakemake --cores 1` to measure first" in failed.stdout + failed.stderr


def test_a_change_to_how_tables_are_drawn_redraws_them_and_measures_nothing(copy_of):
    module = copy_of / "workflow/src/inference_bench/report/tables.py"
    module.write_text(module.read_text() + "\n# a change to how a table is drawn\n")
    assert planned(copy_of) == REPORT


def test_a_table_is_marked_stale_once_its_config_changes(copy_of):
    assert "**Stale:**" not in (copy_of / "README.md").read_text()
    config_file = copy_of / "config/config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["targets"] = []  # not a setting the numbers depend on
    config_file.write_text(yaml.safe_dump(config))
    snakemake(copy_of, "readme")
    assert "**Stale:**" not in (copy_of / "README.md").read_text()
    config["benchmark"]["cycles"] += 1
    config_file.write_text(yaml.safe_dump(config))
    snakemake(copy_of, "readme")  # redrawn from the summaries as they are: the table says it is stale
    assert "**Stale:** the settings in config/config.yaml have changed since" in (copy_of / "README.md").read_text()
    assert planned(copy_of)["benchmark"] == 2  # and a plain run measures it again


def test_a_changed_local_model_is_copied_again(finished, tmp_path):
    source = tmp_path / "checkpoint"
    source.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(finished / f"results/models/{MODEL}/hf" / name, source / name)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"] = [{"name": "local-model", "source": "local", "path": str(source)}]
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", config)
    target = "results/models/local-model/hf"
    snakemake(project, target)
    assert planned(project, target) == {}

    weights = (source / "model.safetensors").read_bytes()
    (source / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # changed, and broken
    assert planned(project, target) == {"download_model": 1}
    failed = snakemake(project, target, check=False)
    assert failed.returncode != 0
    assert f"{source}/model.safetensors is not a readable safetensors file" in failed.stdout + failed.stderr
    (source / "model.safetensors").write_bytes(weights)  # fixed
    snakemake(project, target)
    assert (project / target / "model.safetensors").read_bytes() == weights


TINY_LINES = len(TINY_CONFIG.read_text().splitlines())


@pytest.mark.parametrize(
    ("appended", "expected"),
    [
        # The tiny config ends inside its `benchmark:` section, which already sets batch_sizes.
        pytest.param("  batch_sizes: [64]\n",
                     f"config/config.yaml line {TINY_LINES + 1}: key 'batch_sizes' is written twice",
                     id="a key written twice"),
        pytest.param("  seed: [1, 2\n", "config error in config/config.yaml line", id="malformed YAML"),
    ],
)
def test_a_bad_config_file_is_named_with_its_line_before_any_job(tmp_path, appended, expected):
    project = make_project(tmp_path)
    (project / "config" / "config.yaml").write_text(TINY_CONFIG.read_text() + appended)
    result = snakemake(project, "--dry-run", check=False)
    assert result.returncode != 0 and expected in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (project / "results").exists()


def test_use_conda_without_conda_says_what_to_do(tmp_path):
    if any(shutil.which(tool) for tool in ("conda", "mamba", "micromamba")):
        pytest.skip("conda is installed here")
    result = snakemake(make_project(tmp_path), "--dry-run", "--use-conda", check=False)
    assert result.returncode != 0
    assert "Drop the flag" in result.stdout + result.stderr


def test_everything_written_is_readable_by_others(finished):
    """Under the usual umask 022, results on a shared filesystem are readable by the other users."""
    written = [p for folder in ("results", "images") for p in (finished / folder).rglob("*") if p.is_file()]
    assert len(written) > 30
    private = [str(p.relative_to(finished)) for p in written if p.stat().st_mode & 0o044 != 0o044]
    assert private == []


def test_another_machine_does_not_overwrite_a_tags_results(copy_of):
    """Results measured on one machine are not replaced by another's under the same tag, unless asked."""
    import json

    machine = copy_of / "results/cpu/machine.json"
    recorded = json.loads(machine.read_text())
    assert recorded["cpu_family"] and recorded["logical_cpus"]
    family = str(int(recorded["cpu_family"]) + 1)  # another machine than this one, whatever this one is
    machine.write_text(json.dumps({**recorded, "id": "0" * 12 if recorded["id"] != "0" * 12 else "1" * 12,
                                   "cpu_family": family}))
    (copy_of / BENCH / "pytorch/b1_s16.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in (copy_of / "results/cpu").rglob("*") if p.is_file()}
    refused = snakemake(copy_of, check=False)
    assert refused.returncode != 0
    assert f"results/cpu/ were measured on another machine (cpu_family '{family}' there" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    assert "--config replace_machine=True" in refused.stdout + refused.stderr
    assert {p: p.stat().st_mtime_ns for p in kept if p.exists()} == kept  # nothing touched
    snakemake(copy_of, "--config", "replace_machine=True")
    assert json.loads(machine.read_text())["id"] == recorded["id"]
    assert (copy_of / BENCH / "pytorch/b1_s16.json").exists()


def test_a_gpu_tag_without_its_gpu_stops_before_any_job(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["hardware"] = "t4"
    config["hardware_tags"]["t4"] = {"device": "cuda", "gpu_name_contains": "T4", "variants": ["pytorch"]}
    project = make_project(tmp_path, config)
    result = snakemake(project, check=False)
    assert result.returncode != 0
    assert "hardware tag 't4' needs a CUDA GPU, but none is visible" in result.stdout + result.stderr
    assert not (project / "results").exists()  # not even the model was built


def test_the_regression_command_passes_against_itself_and_catches_a_slowdown(copy_of):
    import pandas as pd

    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for command in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "results"]):
        subprocess.run(command, cwd=copy_of, check=True)
    same = snakemake(copy_of, "regression")
    report = same.stdout + same.stderr
    # Six variant rows judged on their paired speedups, PyTorch's two on their latencies.
    assert report.count("same within noise (paired)") == 6 and report.count("same within noise (absolute)") == 2
    summary_path = copy_of / f"results/cpu/{MODEL}/summary.csv"
    summary = pd.read_csv(summary_path)
    # What slower code would have measured: every latency, so every interval, scaled alike. Two processes
    # of 50 µs calls give intervals far wider than 20% (12.7 standard errors a side), so the tiny run is scaled
    # past its widest interval; the 20% case is tests/test_regression.py's, on intervals as narrow as real ones.
    factor = max(1.2, float((summary["p50_ci_high_ms"] / summary["p50_ci_low_ms"]).max()) * 1.05)
    for column in ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"):
        summary[column] *= factor
    summary.to_csv(summary_path, index=False)
    # Every latency slower and every speedup as it was: what the host moving looks like. Paired, only PyTorch's own
    # rows (nothing to pair with) are slower; judged on latencies alone, every row is.
    failed = snakemake(copy_of, "regression", check=False)
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "2 row(s) slower beyond noise (or failed) against HEAD" in output
    absolute = snakemake(copy_of, "regression", "--config", "regression={decide_on: absolute}", check=False)
    assert absolute.returncode != 0
    output = absolute.stdout + absolute.stderr
    assert f"{len(summary)} row(s) slower beyond noise (or failed) against HEAD" in output
    assert f"+{100 * (factor - 1):.1f}%" in output
