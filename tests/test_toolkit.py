"""The seed's toolkit from Python: the same workflow, its results and caching shared with the command line."""

from __future__ import annotations

import pytest

from conftest import TINY_OVERRIDES, make_project
from inference_bench import TransformerOptimizationToolkit

# The toolkit runs Snakemake in this process (conftest.snakemake_api).
pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("snakemake_api")]


def test_the_seeds_three_lines_run_offline_on_a_tiny_model(tmp_path):
    project = make_project(tmp_path)
    toolkit = TransformerOptimizationToolkit(
        "distilbert-tiny", source="random", config_overrides=TINY_OVERRIDES["distilbert"],
        variants=["pytorch", "onnx-fp32", "ort-int8"], project=project)
    assert toolkit.config["models"][0]["model_type"] == "distilbert"  # told by the name
    artifacts = toolkit.export_onnx(dummy_input={"input_ids": [[101, 2023, 102]]})
    assert {"onnx-fp32", "ort-fp32", "ort-int8", "onnx-int8"} <= set(artifacts)
    assert artifacts["ort-int8"]["path"].is_file() and artifacts["ort-int8"]["sidecar"]["parity"]["min_token_cosine"] > 0.99
    df = toolkit.run_full_analysis(["A short one.", "A somewhat longer sentence is here."])
    # Two texts, the longer six words plus [CLS] and [SEP]: one comparison at batch 2, sequence 8.
    assert set(df["variant"]) == {"pytorch", "onnx-fp32", "ort-int8"}
    assert set(df["batch_size"]) == {2} and set(df["sequence_length"]) == {8}
    assert (df["status"] == "ok").all() and (df["p50_ci_low_ms"] <= df["p50_ms"]).all()
    assert df.set_index("variant").loc["pytorch", "speedup_vs_pytorch"] == 1.0
    # The same settings again: nothing is measured again (the comparison's file is untouched).
    comparison = project / "results/cpu/distilbert-tiny/rounds/b2_s8.json"
    before = comparison.stat().st_mtime_ns
    again = toolkit.run_full_analysis(["A short one.", "A somewhat longer sentence is here."])
    assert comparison.stat().st_mtime_ns == before and again["p50_ms"].tolist() == df["p50_ms"].tolist()
    # The config it ran is a file the command line can run too.
    assert (project / "results/toolkit/distilbert-tiny.yaml").is_file()


def test_bad_settings_are_refused_by_the_schema_before_anything_runs(tmp_path):
    from inference_bench.config_validation import ConfigError

    project = make_project(tmp_path)
    with pytest.raises(ConfigError, match="batch_sizes"):
        TransformerOptimizationToolkit("tiny", source="random", model_type="bert", batch_sizes=[0], project=project)
    toolkit = TransformerOptimizationToolkit("tiny", source="random", model_type="bert", project=project)
    with pytest.raises(ValueError, match="a non-empty string or a list of them"):
        toolkit.run_full_analysis([])


def test_the_toolkit_and_the_command_line_share_a_models_files(tmp_path):
    """The same random model named in config.yaml (with the hub_id a random source does not read) and built
    from Python: the command line then finds its files made, and plans nothing for them."""
    import yaml

    from conftest import TINY_CONFIG, snakemake
    from test_rebuild import planned

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"] = [{"name": "distilbert-tiny", "source": "random", "model_type": "distilbert",
                         "hub_id": "distilbert/distilbert-base-uncased", "revision": "main",
                         "config_overrides": TINY_OVERRIDES["distilbert"]}]
    project = make_project(tmp_path, config)
    toolkit = TransformerOptimizationToolkit("distilbert-tiny", source="random",
                                             config_overrides=TINY_OVERRIDES["distilbert"], project=project)
    toolkit.export_onnx()
    plan = planned(project, "results/models/distilbert-tiny/onnx/ort-int8.onnx")
    assert plan == {}, plan
    assert snakemake(project, "--dry-run", "results/models/distilbert-tiny/onnx/ort-int8.onnx").returncode == 0


def test_a_toolkit_call_keeps_the_command_lines_summary_and_readme(tiny_run, tmp_path):
    """The command line's run, then the toolkit at the shape of its text (issue 28): the model's summary keeps
    every configured shape byte for byte, the toolkit's rows stand in a summary of their own beside it, and a
    plain `snakemake` afterwards has nothing to do."""
    from conftest import copy_project, snakemake

    project = copy_project(tiny_run.project, tmp_path / "project")  # the command line's run of the tiny config
    summary = project / "results/cpu/tiny-distilbert/summary.csv"
    before, readme = summary.read_bytes(), (project / "README.md").read_text()
    toolkit = TransformerOptimizationToolkit("tiny-distilbert", source="random", model_type="distilbert",
                                             config_overrides=TINY_OVERRIDES["distilbert"], project=project)
    df = toolkit.run_full_analysis("A text of its own length.")
    assert set(df["batch_size"]) == {1} and len(set(df["sequence_length"])) == 1
    shape = int(df["sequence_length"].iloc[0])
    assert (project / f"results/cpu/tiny-distilbert/shapes/b1_s{shape}/summary.csv").is_file()
    assert summary.read_bytes() == before and (project / "README.md").read_text() == readme
    plain = snakemake(project, "--dry-run")
    assert "Nothing to be done" in plain.stdout + plain.stderr
