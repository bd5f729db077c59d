"""Faults in real runs: a batch that does not fit, and a workflow killed in the middle of a benchmark.

Each project starts with the tiny model built (conftest.seed_model, from the session's tiny run: the same model,
export and calibration settings): its runs are the measurements, where the faults are."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG, make_project, seed_model, snakemake, snakemake_env

pytestmark = pytest.mark.e2e


def tiny_config(**benchmark) -> dict:
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["hardware_tags"]["cpu"]["variants"] = ["onnx-fp32"]
    config["benchmark"].update(benchmark)
    return config


def project_with_model(root, tiny_run, config: dict):
    """A new project with `config`, the tiny model and the cpu tag's calibration already made."""
    return seed_model(make_project(root, config), tiny_run.project, tag="cpu")


def test_a_batch_that_does_not_fit_fails_alone_and_its_row_is_marked(tiny_run, tmp_path):
    # 600 MiB of address space holds an ONNX Runtime job at batch 1 (about 190 MiB), not at batch 2048.
    project = project_with_model(tmp_path, tiny_run, tiny_config(batch_sizes=[1, 2048], sequence_lengths=[128],
                                                                  memory_limit_mb=600))
    first = snakemake(project, "--keep-going", check=False)
    assert first.returncode != 0
    assert "out of memory at batch 2048, sequence 128 (onnx-fp32 on cpu)" in first.stdout + first.stderr
    bench = project / "results/cpu/tiny-distilbert/bench/onnx-fp32"
    assert (bench / "b1_s128.json").exists() and not (bench / "b2048_s128.json").exists()
    kept = (bench / "b1_s128.json").stat().st_mtime_ns

    snakemake(project)  # the next run summarizes what there is and marks the failed row
    summary = pd.read_csv(project / "results/cpu/tiny-distilbert/summary.csv").set_index("batch_size")
    assert summary.loc[1, "status"] == "ok" and summary.loc[1, "p50_ms"] > 0
    assert summary.loc[2048, "status"] == "failed"
    assert summary.loc[2048, "failure"].startswith("out of memory at batch 2048")
    assert pd.isna(summary.loc[2048, "p50_ms"])
    assert "**failed**: out of memory at batch 2048" in (project / "README.md").read_text()
    assert (bench / "b1_s128.json").stat().st_mtime_ns == kept


def test_record_mode_writes_the_failed_row_in_one_run(tiny_run, tmp_path):
    project = project_with_model(tmp_path, tiny_run, tiny_config(batch_sizes=[1, 2048], sequence_lengths=[128],
                                                                  memory_limit_mb=600, on_failure="record"))
    snakemake(project)
    record = json.loads((project / "results/cpu/tiny-distilbert/bench/onnx-fp32/b2048_s128.json").read_text())
    assert record["status"] == "failed" and record["failure_kind"] == "OutOfMemoryError"
    summary = pd.read_csv(project / "results/cpu/tiny-distilbert/summary.csv").set_index("batch_size")
    assert list(summary["status"]) == ["ok", "failed"]
    assert "**failed**: out of memory at batch 2048" in (project / "README.md").read_text()


def test_a_workflow_killed_mid_benchmark_redoes_only_that_job(tiny_run, tmp_path):
    project = project_with_model(tmp_path, tiny_run, tiny_config(batch_sizes=[1, 2], cycles=2, block_s=1.0))
    bench = project / "results/cpu/tiny-distilbert/bench/onnx-fp32"
    # The comparisons (one per batch size) are the benchmark jobs; the per-variant results are copied out of
    # them by cheap jobs that Snakemake may schedule before or after the next comparison, so the comparisons are
    # what is watched and what must not be redone.
    comparisons = project / "results/cpu/tiny-distilbert/rounds"
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1"], cwd=project, env=snakemake_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        # Wait until one comparison has finished and the next one is running (2 processes of 2 blocks of 1 s: it
        # cannot finish in the second waited below).
        while time.monotonic() < deadline:
            done = list(comparisons.glob("*.json")) if comparisons.exists() else []
            # One comparison's log per (batch, sequence): the second appears when its comparison starts.
            running = list((project / "logs/cpu/tiny-distilbert/bench").glob("*.log")) \
                if (project / "logs").exists() else []
            if len(done) == 1 and len(running) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no benchmark started in time")
        time.sleep(1.0)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in comparisons.glob("*.json")}
    assert len(finished) == 1
    assert not list(comparisons.glob("*.tmp")) and not list(comparisons.glob(".*.tmp"))  # nothing half-written
    assert not list(bench.glob("*.tmp")) and not list(bench.glob(".*.tmp"))

    snakemake(project, "--unlock")  # a killed Snakemake leaves its lock behind
    snakemake(project, "--rerun-incomplete")
    after = {p.name: p.stat().st_mtime_ns for p in comparisons.glob("*.json")}
    assert sorted(after) == ["b1_s16.json", "b2_s16.json"]
    for name, mtime in finished.items():
        assert after[name] == mtime  # the finished comparison was kept, not timed again
    assert sorted(p.name for p in bench.glob("*.json")) == ["b1_s16.json", "b2_s16.json"]
    for path in bench.glob("*.json"):
        assert json.loads(path.read_text())["status"] == "ok"
