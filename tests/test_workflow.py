"""The real snakemake on a tiny config in a temporary copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_project, make_project, snakemake

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished_run(tiny_run, tmp_path_factory) -> Path:
    """The session's tiny run (conftest.tiny_run: the real snakemake from an empty project), in a copy that this
    module's tests may change."""
    project = copy_project(tiny_run.project, tmp_path_factory.mktemp("project") / "project")
    (project / "terminal.log").write_text(tiny_run.terminal)  # what a user's terminal showed
    return project


def test_every_artifact_and_sidecar(finished_run):
    onnx_dir = finished_run / "results/models/tiny-distilbert/onnx"
    for variant in ("onnx-fp32", "onnx-fp16", "ort-fp32", "ort-fp16", "fp16-ort", "ort-int8"):
        sidecar = json.loads((onnx_dir / f"{variant}.json").read_text())
        assert sidecar["file_bytes"] == (onnx_dir / f"{variant}.onnx").stat().st_size
        assert sidecar["parity"]["min_token_cosine"] > 0.99
        assert "onnxruntime" in sidecar["versions"]
    for fused in ("ort-fp32", "fp16-ort"):
        assert json.loads((onnx_dir / f"{fused}.json").read_text())["fused_operators"]["Attention"] == 2
    assert (finished_run / "results/models/tiny-distilbert/hf/manifest.json").is_file()
    assert (finished_run / "logs/models/tiny-distilbert/export_onnx.log").stat().st_size > 0


def test_benchmarks_summary_charts_and_readme(finished_run):
    summary = pd.read_csv(finished_run / "results/cpu/tiny-distilbert/summary.csv")
    assert len(summary) == 4 * 2  # variants x batch sizes, one sequence length
    assert set(summary["variant"]) == {"pytorch", "onnx-fp32", "ort-fp32", "ort-int8"}
    assert (summary.loc[summary["variant"] == "pytorch", "speedup_vs_pytorch"] == 1.0).all()
    bench = json.loads((finished_run / "results/cpu/tiny-distilbert/bench/ort-int8/b2_s16.json").read_text())
    assert bench["batch_size"] == 2 and bench["sequence_length"] == 16 and bench["threads"] == 1
    # Every row is held to its roofline: compute or memory (or cache), never above it (aggregation refuses that).
    assert summary["share_of_bound"].between(0, 1.02).all() and set(summary["bound_roof"]) <= {"compute", "memory", "cache"}
    assert bench["architecture"]["hidden_size"] == 32 and {g["gemm"] for g in bench["shape_gemms"]} >= {"projection"}
    for chart in ("speedup", "throughput", "latency", "efficiency", "roofline", "memory", "tradeoff", "hardware"):
        assert (finished_run / f"images/tiny-distilbert/{chart}.png").stat().st_size > 10_000
    assert (finished_run / "results/readme.stamp").exists()
    readme = (finished_run / "README.md").read_text()
    assert readme.startswith("# Project\n\nkept\n\n") and readme.endswith("<!-- results:end -->\n\nkept too\n")
    assert "| ort-int8 | 2 | 16 |" in readme


def test_second_run_has_nothing_to_do(finished_run):
    result = snakemake(finished_run, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "planned"),
    [
        pytest.param({}, {}, id="nothing changed"),
        pytest.param(
            {"benchmark": {"batch_sizes": [1, 2, 3]}},
            {"benchmark": 1, "variant_result": 4, "aggregate": 1, "charts": 1, "readme": 1, "all": 1},
            id="one batch size added: its comparison and a result per variant",
        ),
        pytest.param(
            {"benchmark": {"cycles": 3, "warmup_iterations": 2}},
            {"benchmark": 2, "variant_result": 8, "aggregate": 1, "charts": 1, "readme": 1, "all": 1},
            id="timing settings: benchmarks onwards, no export",
        ),
        pytest.param(
            {"benchmark": {"pytorch_attn_implementation": "eager"}},
            {"benchmark": 2, "variant_result": 8, "aggregate": 1, "charts": 1, "readme": 1, "all": 1},
            id="PyTorch attention: the comparisons (paired rounds are timed together), no export",
        ),
        pytest.param(
            {"export": {"opset": 18}},
            {"export_onnx": 1, "optimize_ort": 2, "convert_fp16": 2, "quantize_int8": 2, "benchmark": 2,
             "variant_result": 8, "aggregate": 1, "charts": 1, "readme": 1, "all": 1},
            id="opset: export onwards, the comparisons timed again",
        ),
        pytest.param(
            {"fp16": {"op_block_list": ["Softmax"]}},
            {"convert_fp16": 2, "optimize_ort": 1, "aggregate": 1, "charts": 1, "readme": 1, "all": 1},
            id="FP16 settings: the FP16 files and fusion after FP16 only",
        ),
        pytest.param(
            {"models": [{"name": "tiny-bert", "model_type": "bert", "config_overrides": {
                "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}}]},
            {"download_model": 1, "reference_outputs": 1, "export_onnx": 1, "optimize_ort": 2, "convert_fp16": 2,
             "quantize_int8": 2, "benchmark": 2, "variant_result": 8, "aggregate": 1, "charts": 1, "readme": 1,
             "all": 1},
            id="another model: everything for it, nothing for the first",
        ),
    ],
)
def test_a_change_reruns_exactly_what_depends_on_it(finished_run, tmp_path, change, planned):
    (tmp_path / "change.yaml").write_text(yaml.safe_dump(change))
    result = snakemake(finished_run, "--dry-run", "--quiet", "rules", "--configfile", str(tmp_path / "change.yaml"))
    counts = _job_counts(result.stdout)
    counts.pop("total", None)
    assert counts == planned
    if "models" in change:
        assert "tiny-distilbert" not in result.stdout  # its results are neither rebuilt nor removed


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"hardware": "tpu"}, "config error at hardware: 'tpu' is not a declared hardware tag"),
        ({"benchmark": {"batch_sizes": [0]}}, "config error at benchmark.batch_sizes[0]: 0 is not valid"),
        ({"exprot": {}}, "config error: unknown key 'exprot' (did you mean 'export'?)"),
    ],
)
def test_bad_config_stops_before_any_job(tmp_path, override, expected):
    project = make_project(tmp_path)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(override))
    result = snakemake(project, "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (project / "results").exists()


def test_default_config_plans_the_full_chain(tmp_path):
    project = make_project(tmp_path, yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    result = snakemake(project, "--dry-run", "--quiet", "rules")
    assert _job_counts(result.stdout) == {
        "download_model": 1, "reference_outputs": 1, "export_onnx": 1, "optimize_ort": 2, "convert_fp16": 2, "quantize_int8": 2,
        "benchmark": 2 * 2, "variant_result": 7 * 2 * 2, "calibrate": 1, "aggregate": 1, "charts": 1, "readme": 1,
        "all": 1, "total": 46,
    }


def _job_counts(text: str) -> dict[str, int]:
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_sequence_longer_than_the_model_stops_before_any_job(finished_run, tmp_path):
    (tmp_path / "long.yaml").write_text(yaml.safe_dump({"benchmark": {"sequence_lengths": [16, 256]}}))
    result = snakemake(finished_run, "--dry-run", "--configfile", str(tmp_path / "long.yaml"), check=False)
    assert result.returncode != 0
    assert ("config error at benchmark.sequence_lengths: 256 exceeds the max_position_embeddings (128) of model "
            "'tiny-distilbert'") in result.stdout + result.stderr


def test_a_second_tag_joins_the_charts_and_the_readme(finished_run):
    """Results measured elsewhere (a 'gpu-sim' tag, copied from the CPU ones) sit beside this run's."""
    source = finished_run / "results/cpu/tiny-distilbert"
    other = finished_run / "results/gpu-sim/tiny-distilbert"
    other.mkdir(parents=True)
    for name in ("summary.csv", "artifacts.csv", "environment.json"):
        (other / name).write_text((source / name).read_text())
    summary = pd.read_csv(other / "summary.csv").assign(hardware="gpu-sim")
    summary["p50_ms"] /= 10
    summary.to_csv(other / "summary.csv", index=False)
    hardware_chart = finished_run / "images/tiny-distilbert/hardware.png"
    before = hardware_chart.read_bytes()
    snakemake(finished_run, "readme")
    readme = (finished_run / "README.md").read_text()
    assert "**cpu**" in readme and "**gpu-sim**" in readme
    assert "images/tiny-distilbert/hardware.png" in readme
    assert hardware_chart.read_bytes() != before
    assert (finished_run / "results/gpu-sim/tiny-distilbert/summary.csv").exists()


def test_the_html_report_holds_every_chart_and_table_with_its_caption(finished_run):
    """`snakemake --report report.html` after a run: one self-contained page with each chart and summary."""
    from inference_bench import layout

    snakemake(finished_run, "--report", "report.html")
    page = (finished_run / "report.html").read_text()
    assert len(page) > 100_000  # the images are inside the page, not linked
    for chart in layout.CHARTS:
        assert f"{chart}.png" in page, chart
    for caption in ("paired within one comparison", "the model's own shapes", "min(peak, bandwidth x intensity)",
                    "one minus the task metric", "What measured these numbers"):
        assert caption in page, caption
    assert "summary.csv" in page and "environment.json" in page
    assert "interleaved" in page  # the workflow's own description, with the config's rounds filled in


def test_the_terminal_shows_the_pipelines_own_lines_and_the_log_keeps_the_rest(tmp_path):
    import logging
    import sys
    import warnings

    sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
    import _common

    log_file = tmp_path / "job.log"

    def job() -> None:
        logging.getLogger("inference_bench.build.stages").info("fused 6 attention layers")
        logging.getLogger("onnxruntime.quantization").warning("Please consider pre-processing")
        warnings.warn("the float32 number 1e-09 will be truncated to 1e-07", UserWarning, stacklevel=1)

    import io
    terminal = io.StringIO()
    real_stderr, sys.stderr = sys.stderr, terminal
    try:
        _common.run_logged(job, str(log_file))
    finally:
        sys.stderr = real_stderr
        logging.getLogger().handlers.clear()
    shown, kept = terminal.getvalue(), log_file.read_text()
    assert "fused 6 attention layers" in shown
    assert "pre-processing" not in shown and "truncated" not in shown
    assert "pre-processing" in kept and "truncated" in kept and "fused 6 attention layers" in kept


def test_the_terminal_gets_one_line_per_job_that_works(finished_run):
    """Snakemake's job headers become one line each; result copies, "Finished" and "Execute" lines are dropped;
    errors and the pipeline's own lines pass; --verbose turns the filter off."""
    import logging

    from snakemake_interface_logger_plugins.common import LogEvent

    from inference_bench.terminal import ShortJobLines

    short = ShortJobLines()

    def passes(msg, **extra):
        record = logging.LogRecord("snakemake.logging", extra.pop("level", logging.INFO), __file__, 1, msg, (), None)
        record.__dict__.update(extra)
        return short.filter(record), record

    kept, header = passes(" Rule: benchmark, Jobid: 7", event=LogEvent.JOB_INFO, jobid=7, rule_name="benchmark",
                          wildcards={"model": "m", "batch": "32"})
    assert kept and header.event == LogEvent.RUN_INFO and header.getMessage().endswith("] benchmark (model=m, batch=32)")
    assert not passes("", event=LogEvent.JOB_INFO, jobid=8, rule_name="variant_result", wildcards={})[0]
    assert not passes("Execute 1 jobs...", event=LogEvent.JOB_STARTED, jobs=[7])[0]
    assert not passes("Select jobs to execute...")[0]
    assert not passes("", event=LogEvent.JOB_FINISHED, job_id=8)[0]
    assert not passes("", event=LogEvent.PROGRESS, done=3, total=9)[0]  # after a result copy
    assert passes("", event=LogEvent.PROGRESS, done=9, total=9)[0]  # the last one always
    assert not passes("", event=LogEvent.JOB_FINISHED, job_id=7)[0]
    assert passes("", event=LogEvent.PROGRESS, done=4, total=9)[0]  # after a job that worked
    assert passes("benchmark failed", event=LogEvent.JOB_ERROR, level=logging.ERROR)[0]
    assert passes("2026-11-27 INFO inference_bench.rounds: round 1 of 3 done")[0]

    # The finished run's terminal: a line per job that works (15 of the 24: not the 8 result copies nor `all`).
    terminal = (finished_run / "terminal.log").read_text()
    job_lines = [line for line in terminal.splitlines() if line.startswith("[") and "] " in line]
    assert len(job_lines) == 15 and not any("variant_result" in line for line in job_lines)
    assert "Finished jobid" not in terminal and "Loading weights" not in terminal
    assert len(terminal.splitlines()) < 130
