"""Charts and the README section, from summaries written by hand for two hardware tags."""

import json
import math

import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG, record
from inference_bench.report.aggregate import summarize
from inference_bench.report.charts import draw_charts
from inference_bench.layout import CHARTS
from inference_bench.report.readme import END, START, MarkerError, splice, update_readme
from inference_bench.report.targets import Target, evaluate_targets


@pytest.fixture
def two_tags(tmp_path):
    paths = []
    for tag, scale in (("cpu", 1.0), ("t4", 0.05)):
        folder = tmp_path / "results" / tag / "m"
        folder.mkdir(parents=True)
        records = [record(v, b, p * b**0.8 * scale, hardware=tag) for v, p in
                   (("pytorch", 60.0), ("onnx-fp32", 30.0), ("ort-int8", 12.0)) for b in (1, 16)]
        summarize(records, {"fp32": 500.0 / scale, "int8": 1500.0 / scale}).to_csv(folder / "summary.csv", index=False)
        (folder / "artifacts.csv").write_text(
            "variant,file_bytes,sha256,stage,parity_max_abs_diff,parity_min_token_cosine,fused_operators\n"
            'onnx-fp16,133000000,ab,convert_fp16,0.007,0.9999995,{}\n'
            'ort-fp32,265000000,cd,optimize_ort,3e-06,1.0,"{""Attention"": 6}"\n'
        )
        (folder / "environment.json").write_text(json.dumps(records[0]["environment"]))
        paths.append(folder / "summary.csv")
    return paths


def test_every_chart_is_a_nonempty_png(two_tags, tmp_path):
    written = draw_charts(two_tags, "m", tmp_path / "images")
    assert [p.stem for p in written] == list(CHARTS)
    for path in written:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_readme_splice_is_idempotent_and_keeps_the_rest(two_tags, tmp_path):
    draw_charts(two_tags, "m", tmp_path / "images" / "m")
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nIntro text.\n\n", "\n\n## After\nkept as is\n"
    readme.write_text(f"{before}{START}\nold table\n{END}{after}")
    targets = [_target("ort-int8", 1, "parity_min_token_cosine", 0.999)]
    assert update_readme(readme, two_tags, ["m"], targets)
    first = readme.read_text()
    assert first.startswith(before + START) and first.endswith(END + after)
    assert "old table" not in first
    assert "**cpu**" in first and "**t4**" in first and "images/m/hardware.png" in first
    assert "| ort-int8 | 1 | 128 |" in first
    assert "% of bound (roof)" in first and "images/m/efficiency.png" in first
    assert "| ort-fp32 | 265 | Attention 6 |" in first and "| onnx-fp16 | 133 | none |" in first
    assert "ort-int8 min per-token cosine ≥ 0.999 at batch 1, sequence 128 | 1.000000 | yes" in first
    assert not update_readme(readme, two_tags, ["m"], targets)
    assert readme.read_text() == first


def test_the_variance_table_of_the_reference_machine_goes_between_its_markers(two_tags, tmp_path):
    from inference_bench.report.readme import VARIANCE_END, VARIANCE_START

    draw_charts(two_tags, "m", tmp_path / "images" / "m")
    for path, sd in zip(two_tags, (0.0123, 0.0456)):
        pd.DataFrame([{"hardware": path.parts[-3], "model": "m", "variant": "ort-int8", "batch_size": 1,
                       "sequence_length": 128, "processes": 5, "blocks_per_process": 3, "calls_per_block": 17,
                       "call_sd": sd, "block_sd": sd, "process_sd": sd, "pair_cycle_sd": sd, "pair_process_sd": sd,
                       "cycles_recommended": 4, "processes_for_target": 6}]).to_csv(path.parent / "variance.csv",
                                                                                      index=False)
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n{END}\n\n## How it measures\n\n{VARIANCE_START}\nold\n{VARIANCE_END}\nkept\n")
    update_readme(readme, two_tags, ["m"], reference_hardware="t4")
    text = readme.read_text()
    section = text[text.index(VARIANCE_START):text.index(VARIANCE_END)]
    assert "old" not in section and section.count("| ort-int8 | 1 | 128 | 5 × 3 × 17 |") == 1
    assert "Measured on t4" in section and "4.56%" in section and "1.23%" not in section  # the reference's
    assert text.endswith(f"{VARIANCE_END}\nkept\n")


def test_single_tag_readme_has_no_hardware_comparison(two_tags, tmp_path):
    draw_charts(two_tags[:1], "m", tmp_path / "images" / "m")
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n{END}\n")
    update_readme(readme, two_tags[:1], ["m"])
    assert "images/m/speedup.png" in readme.read_text()
    assert "hardware.png" not in readme.read_text()


def test_models_of_other_configs_are_listed_after_this_runs(two_tags, tmp_path):
    other = tmp_path / "results" / "cpu" / "experiment" / "summary.csv"
    other.parent.mkdir(parents=True)
    other.write_text(two_tags[0].read_text().replace(",m,", ",experiment,"))
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n{END}\n")
    update_readme(readme, [*two_tags, other], ["m"])
    text = readme.read_text()
    assert text.index("### m") < text.index("### experiment")
    assert "images/experiment" not in text  # no charts drawn for it


def test_missing_markers_are_an_error():
    with pytest.raises(MarkerError, match="no results section to rewrite: put the lines"):
        splice("# no markers here\n", "table")
    with pytest.raises(MarkerError):
        splice(f"{END}\n{START}\n", "table")


def _target(variant, batch, metric="speedup_vs_pytorch", minimum=2.3, hardware="cpu", seq=128):
    return Target(hardware=hardware, variant=variant, batch_size=batch, sequence_length=seq, metric=metric,
                  minimum=minimum)


def test_targets_are_evaluated_from_the_summary():
    records = [record("pytorch", 1, 60.0), record("ort-fp32", 1, 20.0), record("ort-int8", 1, 12.0)]
    targets = [_target("ort-fp32", 1), _target("ort-int8", 1, minimum=6.0), _target("ort-int8", 32, minimum=5.0),
               _target("ort-fp32", 1, "share_of_peak", 0.8), _target("ort-int8", 1, hardware="t4")]
    results = {row["target"]: row for row in evaluate_targets(summarize(records, {"fp32": 100.0}), targets)}
    assert len(results) == 4  # the t4 target has no summary of its tag here
    assert results["ort-fp32 ≥ 2.3× pytorch at batch 1, sequence 128"]["met"]
    int8 = results["ort-int8 ≥ 6× pytorch at batch 1, sequence 128"]
    assert not int8["met"] and int8["measured"] == pytest.approx(5.0) and int8["gap"] == "83.3% of target"
    assert math.isnan(results["ort-int8 ≥ 5× pytorch at batch 32, sequence 128"]["measured"])
    close = evaluate_targets(summarize([record("pytorch", 1, 59.7), record("ort-int8", 1, 10.0)]),
                             [_target("ort-int8", 1, minimum=6.0)])[0]
    assert not close["met"] and close["gap"] == "99.5% of target"  # never "100%" beside a "no"

    # 11 GFLOP in 20 ms = 550 GFLOP/s against a 100 GFLOP/s peak (the fake record's numbers).
    assert results["ort-fp32 ≥ 80% of the FP32 matmul peak at batch 1, sequence 128"]["met"]


def test_a_target_without_a_matching_row_is_named_in_the_readme(two_tags, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n{END}\n")
    targets = [_target("ort-int8", 1, minimum=1.5), _target("ort-int8", 1, seq=512, minimum=1.5)]
    update_readme(readme, two_tags, ["m"], targets)
    text = readme.read_text()
    assert "| ort-int8 ≥ 1.5× pytorch at batch 1, sequence 128 |" in text
    assert ("| ort-int8 ≥ 1.5× pytorch at batch 1, sequence 512 | no matching row | not measured: no result at "
            "this variant, batch and sequence length |") in text
    # Another model's summary (an experiment's) lists only the targets it has rows for.
    update_readme(readme, two_tags, ["other-model"], targets)
    assert "sequence 512" not in readme.read_text()


def test_a_faster_baseline_is_named():
    from inference_bench.report.readme import baseline_wins

    records = [record("pytorch", 1, 60.0), record("pytorch-bf16", 1, 30.0), record("ort-fp32", 1, 40.0),
               record("ort-int8", 1, 20.0), record("pytorch-bf16", 16, 500.0), record("ort-fp32", 16, 400.0)]
    assert baseline_wins(summarize(records)) == ["`pytorch-bf16` is faster than `ort-fp32` at batch 1."]
    two_lengths = [*records, record("pytorch-bf16", 1, 5.0, seq=16), record("ort-fp32", 1, 8.0, seq=16)]
    assert baseline_wins(summarize(two_lengths)) == [
        "`pytorch-bf16` is faster than `ort-fp32` at batch 1 at sequence 16, batch 1 at sequence 128."]


def test_the_readme_says_what_the_quiet_check_and_the_canary_saw(two_tags, tmp_path):
    from inference_bench.report.readme import quiet_note

    records = [record("pytorch", 1, 60.0), record("ort-int8", 1, 12.0)]
    for rec, share, retried, canary in zip(records, (0.02, 0.31), (0, 1), (1.0, 1.2)):
        rec["quiet"] = {"other_cpu_share": share, "retried": retried, "noisy": int(share > 0.1), "canary_ms": canary,
                        "idle_workers_cpu_share": 0.0004}
        rec |= {"processes": 3, "blocks": 18}
    summary = summarize(records, {"fp32": 100.0}, calibration_canary_ms=1.0)
    assert list(summary["canary_vs_calibration"]) == [1.0, 1.2]
    note = quiet_note(summary)
    assert "at most 31% of the machine" in note and "1 of 36 blocks timed twice" in note and "1 still over" in note
    assert "1.00–1.20× its time in the calibration job" in note
    assert "The idle workers (stopped while another timed) used at most 0.04% of a core" in note
    assert "Quiet-machine check" not in quiet_note(summarize([record("pytorch", 1, 60.0)]))  # none recorded
    for reached in (True, False):
        timed = quiet_note(summarize([{**rec, "reached_target": reached, "design": {"target_interval": 0.03}}
                                      for rec in records]))
        assert "3 fresh processes per variant" in timed and "t interval over the processes" in timed
        assert ("batch 1, sequence 128 spent their time budget before every speedup was known to ±3%" in timed) \
            == (not reached)
        assert ("Every comparison stopped once each speedup was known to ±3%" in timed) == reached


def test_a_table_measured_by_other_code_is_marked_stale():
    from inference_bench.environment import measuring_code_hash
    from inference_bench.report.readme import stale_note

    assert stale_note({"code_hash": measuring_code_hash()}) == ""
    assert stale_note({}) == ""  # measured before the hash was recorded: nothing to compare
    assert stale_note({"code_hash": "0123456789ab"}).startswith("**Stale:** measured by other code")


def test_a_table_whose_config_has_changed_since_is_marked_stale(tmp_path, monkeypatch):
    from inference_bench.config_validation import SCHEMA_PATH, validate_config
    from inference_bench.report.provenance import config_sources, settings_hash
    from inference_bench.report.readme import stale_note

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    base = yaml.safe_load(TINY_CONFIG.read_text())
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "config/more.yaml").write_text(yaml.safe_dump({"benchmark": {"cycles": 5}}))
    files = ["config/config.yaml", "config/more.yaml"]
    merged = validate_config({**base, "benchmark": {**base["benchmark"], "cycles": 5}, "hardware": "cpu"}, SCHEMA_PATH)
    environment = {"config_sources": config_sources(files, {"hardware": "cpu"}),
                   "settings_hash": settings_hash(merged, "tiny-distilbert", "cpu")}
    assert stale_note(environment, "tiny-distilbert", "cpu") == ""
    # The targets are not a measured setting: changing them leaves the table current.
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump({**base, "targets": []}))
    assert stale_note(environment, "tiny-distilbert", "cpu") == ""
    (tmp_path / "config/more.yaml").write_text(yaml.safe_dump({"benchmark": {"cycles": 6}}))
    note = stale_note(environment, "tiny-distilbert", "cpu")
    assert note.startswith("**Stale:** the settings in config/config.yaml + config/more.yaml have changed since")
    assert "`snakemake --cores 1 --configfile config/more.yaml` measures it again" in note
    (tmp_path / "config/more.yaml").unlink()
    assert "its config file config/more.yaml no longer exists" in stale_note(environment, "tiny-distilbert", "cpu")


def test_a_target_inside_the_interval_is_within_noise_not_missed():
    from inference_bench.report.readme import _measured_text, _met_text

    target = Target("cpu", "ort-fp32", 1, 128, "speedup_vs_pytorch", 2.3)
    summary = summarize([record("pytorch", 1, 60.0), record("ort-fp32", 1, 27.0)])
    summary["speedup_ci_low"], summary["speedup_ci_high"] = 2.1, 2.5  # 2.22x [2.1-2.5] against 2.3
    (row,) = evaluate_targets(summary, [target])
    assert row["undecided"] and not row["met"]
    assert _met_text(row) == "within noise: the 95% interval holds the target"
    assert _measured_text(row) == "2.22 [2.10–2.50]"
    summary["speedup_ci_high"] = 2.25  # the whole interval below: a miss
    (row,) = evaluate_targets(summary, [target])
    assert not row["undecided"] and _met_text(row).startswith("no (96.")


def test_with_an_experiments_page_other_models_go_there(two_tags, tmp_path):
    other = tmp_path / "results" / "cpu" / "experiment" / "summary.csv"
    other.parent.mkdir(parents=True)
    other.write_text(two_tags[0].read_text().replace(",m,", ",experiment,"))
    draw_charts(two_tags[:1], "m", tmp_path / "images" / "m")
    readme, page = tmp_path / "README.md", tmp_path / "config" / "experiments" / "README.md"
    readme.write_text(f"intro\n{START}\n{END}\n")
    page.parent.mkdir(parents=True)
    page.write_text(f"why each experiment\n{START}\n{END}\n")
    targets = [_target("ort-int8", 1, seq=512, minimum=1.5)]
    assert update_readme(readme, [*two_tags, other], ["m"], targets)
    front, experiments = readme.read_text(), page.read_text()
    assert "### m" in front and "### experiment" not in front and "](images/m/speedup.png)" in front
    assert "### experiment" in experiments and "### m\n" not in experiments
    assert experiments.startswith("why each experiment\n") and "no matching row" not in experiments
    assert not update_readme(readme, [*two_tags, other], ["m"], targets)  # a second pass changes nothing


def test_a_summary_from_before_the_roofline_still_renders_its_share_of_peak():
    from inference_bench.report.tables import results_table

    old = summarize([record("pytorch", 1, 50.0), record("ort-fp32", 1, 20.0)], {"fp32": 1000.0})
    old = old.drop(columns=["share_of_bound", "bound_roof", "bound_ms", "compute_bound_ms", "memory_bound_ms",
                            "bytes_per_batch", "arithmetic_intensity", "outlier"])
    table = results_table(old)
    assert "% of peak" in table and "% of bound (roof)" not in table
    assert list(table["% of peak"]) == [f"{v:.0%}" for v in old["share_of_peak"]]


def test_the_roofline_note_names_both_roofs_and_the_theoretical_peak():
    from inference_bench.report.readme import roofline_note

    environment = {"roofs": {
        "peak_gflops": {"fp32": 500.0, "int8": 1900.0},
        "memory_roofs": {"last_level_cache_bytes": 32 * 2**20, "memory": {"roof_gbs": 52.6},
                         "cache": {"roof_gbs": 220.8}},
        "theoretical": {"cores": 2, "fp32_flops_per_cycle_per_core": 64, "clock_ghz": 2.5, "clock_source": "a test clock",
                        "peak_gflops": {"fp32": 320.0}},
    }}
    note = roofline_note(environment)
    assert "FP32 500, INT8 1900" in note and "53 GB/s from memory" in note and "221 GB/s when they fit the 32 MiB" in note
    # 500 measured against 2 x 64 x 2.5 = 320: above the nominal clock's peak, so the clock it implies is said.
    assert "= 320 GFLOP/s, at a test clock; the measured 500 is 156% of it, as if the cores ran at 3.91 GHz." in note
    assert roofline_note({}) == ""  # a summary from before the roofline


def test_the_design_note_says_how_much_the_host_disturbed_and_what_the_speedups_counted():
    from inference_bench.report.readme import host_note

    rows = pd.DataFrame([{"batch_size": 1, "sequence_length": 16, "host_disturbed_share": 0.2, "host_counted": "every cycle"},
                         {"batch_size": 32, "sequence_length": 128, "host_disturbed_share": 0.55,
                          "host_counted": "every cycle"}])
    assert "in 20–55% of each comparison's cycles; the speedups count every cycle" in host_note(rows)
    rows.loc[1, "host_counted"] = "undisturbed cycles"
    assert "the speedups at batch 32, sequence 128 count the undisturbed cycles only" in host_note(rows)
