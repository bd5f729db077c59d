import re
import json

import numpy as np

import pandas as pd
import pytest

from conftest import record
from inference_bench.report.aggregate import aggregate, summarize
from inference_bench.report.tables import format_number, markdown_table


def test_speedup_is_pytorch_median_over_variant_median():
    records = [record("ort-int8", 1, 10.0), record("pytorch", 1, 60.0), record("pytorch", 32, 900.0),
               record("ort-int8", 32, 150.0), record("onnx-fp32", 1, 30.0)]
    summary = summarize(records)
    by_key = summary.set_index(["variant", "batch_size"])["speedup_vs_pytorch"]
    assert by_key[("ort-int8", 1)] == pytest.approx(6.0)
    assert by_key[("ort-int8", 32)] == pytest.approx(6.0)
    assert by_key[("onnx-fp32", 1)] == pytest.approx(2.0)
    assert by_key[("pytorch", 1)] == pytest.approx(1.0)
    assert list(summary["variant"]) == ["pytorch", "pytorch", "onnx-fp32", "ort-int8", "ort-int8"]
    assert summary.loc[0, "parity_min_token_cosine"] == pytest.approx(0.9999999)


def test_share_of_peak_uses_the_peak_of_the_variant_precision():
    records = [record("pytorch", 1, 50.0), record("ort-int8", 1, 10.0)]
    for rec in records:
        rec["flops_per_batch"] = 10e9
        rec["achieved_gflops"] = 10e9 / (rec["p50_ms"] / 1000) / 1e9
    summary = summarize(records, {"fp32": 400.0, "int8": 2000.0}).set_index("variant")
    assert summary.loc["pytorch", "achieved_gflops"] == pytest.approx(200.0)
    assert summary.loc["pytorch", "share_of_peak"] == pytest.approx(0.5)
    assert summary.loc["ort-int8", "peak_gflops"] == 2000.0
    assert summary.loc["ort-int8", "share_of_peak"] == pytest.approx(0.5)
    assert summarize(records)["share_of_peak"].isna().all()


def test_speedup_is_per_hardware_and_missing_without_a_baseline():
    summary = summarize([record("pytorch", 1, 60.0), record("ort-fp32", 1, 30.0),
                         record("ort-fp32", 1, 3.0, hardware="t4")])
    speedups = summary.set_index(["hardware", "variant"])["speedup_vs_pytorch"]
    assert speedups[("cpu", "ort-fp32")] == pytest.approx(2.0)
    assert pd.isna(speedups[("t4", "ort-fp32")])


def test_aggregate_writes_summary_artifacts_markdown_environment(tmp_path):
    paths = []
    for rec in (record("pytorch", 1, 60.0), record("ort-fp32", 1, 20.0)):
        paths.append(tmp_path / f"results/cpu/m/bench/{rec['variant']}/b1_s128.json")
        paths[-1].parent.mkdir(parents=True)
        paths[-1].write_text(json.dumps(rec))
    sidecar = tmp_path / "ort-fp16.json"
    sidecar.write_text(json.dumps({"file_bytes": 133, "sha256": "ab" * 32, "stage": "convert_fp16",
                                   "parity": {"max_abs_diff": 0.003, "min_token_cosine": 0.99999}}))
    out = {name: tmp_path / name for name in ("s.csv", "a.csv", "s.md", "e.json")}
    aggregate(paths, [sidecar], out["s.csv"], out["a.csv"], out["s.md"], out["e.json"])
    summary = pd.read_csv(out["s.csv"])
    assert len(summary) == 2 and summary["speedup_vs_pytorch"].tolist() == [1.0, 3.0]
    assert pd.read_csv(out["a.csv"]).loc[0, "variant"] == "ort-fp16"
    assert "| ort-fp32 | 1 | 128 | 20.0 |" in out["s.md"].read_text()
    assert json.loads(out["e.json"].read_text())["jobs"] == 2


def test_numbers_are_readable():
    assert [format_number(v) for v in (12345.6, 265.4, 29.96, 1.234, 0.0042)] == ["12,346", "265", "30.0", "1.23",
                                                                                   "0.0042"]
    table = markdown_table(pd.DataFrame({"a": ["x"], "b": [float("nan")]}))
    assert table.splitlines()[2] == "| x | – |"


DISTILBERT = {"model_type": "distilbert", "num_layers": 6, "num_heads": 12, "hidden_size": 768,
              "intermediate_size": 3072, "max_positions": 512, "vocab_size": 30522, "pad_token_id": 0}
ROOFS = {"last_level_cache_bytes": 32 * 2**20, "memory": {"roof_gbs": 90.0}, "cache": {"roof_gbs": 200.0}}


def _with_shape(rec, seq=16):
    from inference_bench.measure.flops import encoder_flops
    from inference_bench.models import ArchitectureFacts

    rec["architecture"] = dict(DISTILBERT)
    rec["sequence_length"] = seq
    rec["inputs"] = {"kind": "random", "width": seq}
    rec["flops_per_batch"] = encoder_flops(ArchitectureFacts(**DISTILBERT), rec["batch_size"], seq)
    rec["achieved_gflops"] = rec["flops_per_batch"] / (rec["p50_ms"] / 1000) / 1e9
    return rec


def test_each_row_has_its_share_of_the_roofline_bound_and_its_roof():
    # DistilBERT at batch 1, sequence 16: 1.36 GFLOP; FP32 moves 170 MB of weights (1.9 ms at 90 GB/s), against
    # 2.7 ms of compute at 500 GFLOP/s: compute-bound. INT8 at batch 1 moves 42.5 MB of weights.
    records = [_with_shape(record("pytorch", 1, 10.0)), _with_shape(record("ort-int8", 1, 3.0))]
    summary = summarize(records, {"fp32": 500.0, "int8": 2000.0}, memory_roofs=ROOFS).set_index("variant")
    pytorch = summary.loc["pytorch"]
    assert pytorch["bound_roof"] == "compute"
    assert pytorch["compute_bound_ms"] == pytest.approx(pytorch["flops_per_batch"] / 500e9 * 1e3)
    assert pytorch["share_of_bound"] == pytest.approx(pytorch["bound_ms"] / 10.0)
    assert pytorch["bytes_per_batch"] > 170e6 and pytorch["arithmetic_intensity"] == pytest.approx(
        pytorch["flops_per_batch"] / pytorch["bytes_per_batch"])
    slow_memory = dict(ROOFS, memory={"roof_gbs": 20.0})  # 42.5 MB at 20 GB/s = 2.1 ms > 0.7 ms of compute
    int8 = summarize(records, {"fp32": 500.0, "int8": 2000.0}, memory_roofs=slow_memory).set_index("variant").loc["ort-int8"]
    assert int8["bound_roof"] == "memory" and int8["memory_bound_ms"] == pytest.approx(int8["bytes_per_batch"] / 20e6)


def test_a_row_above_its_bound_is_kept_out_and_the_rest_summarized(caplog):
    from inference_bench.report.tables import results_table

    records = [_with_shape(record("pytorch", 1, 10.0)), _with_shape(record("onnx-fp32", 1, 2.0))]
    # 1.36 GFLOP in 2 ms is 680 GFLOP/s, above a 500 GFLOP/s peak: the bound (2.7 ms) or the row is wrong.
    kept_out = summarize(records, {"fp32": 500.0}, memory_roofs=ROOFS).set_index("variant")
    row = kept_out.loc["onnx-fp32"]
    assert row["status"] == "above_bound" and pd.isna(row["p50_ms"]) and pd.isna(row["speedup_vs_pytorch"])
    assert re.match(r"kept out: cpu/m/onnx-fp32 at batch 1, sequence 16 ran in 2 ms, 13\d% of its roofline bound "
                    r"of 2.7\d? ms \(compute roof", row["failure"])
    assert kept_out.loc["pytorch", "status"] == "ok" and kept_out.loc["pytorch", "p50_ms"] == 10.0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [row["failure"]]
    table = results_table(kept_out.reset_index())
    assert table["min cosine"].str.startswith("**kept out**: kept out: cpu/m/onnx-fp32").sum() == 1
    # The model's own matrix multiplies, timed by the comparison, ran at 700: the bound is then right.
    records[1]["shape_gemms"] = [{"precision": "fp32", "gflops": 700.0}]
    summary = summarize(records, {"fp32": 500.0}, memory_roofs=ROOFS).set_index("variant")
    assert summary.loc["onnx-fp32", "peak_gflops"] == 700.0 and summary.loc["onnx-fp32", "share_of_bound"] < 1.0


def test_a_variant_much_slower_than_eager_is_flagged_with_what_its_job_saw():
    compiled = record("pytorch-compile", 8, 176.3, seq=16)
    compiled["compile_counters"] = {"recompilations": 0, "graph_breaks": 0, "graphs": 1}
    compiled["quiet"] = {"other_cpu_share": 0.02, "noisy": 0, "canary_spread": 1.01}
    summary = summarize([record("pytorch", 8, 75.3, seq=16), compiled, record("ort-fp32", 8, 90.0, seq=16)])
    notes = summary.set_index("variant")["outlier"]
    assert notes["pytorch-compile"] == ("2.3× slower than pytorch (torch.compile: 0 compilations and 0 graph breaks "
                                        "in warm-up and timed calls over 1 process(es), 1 graph(s); other "
                                        "processes used at most 2% of the machine, 0 noisy block(s); canary spread "
                                        "1.01× across processes)")
    assert pd.isna(notes["ort-fp32"]) and pd.isna(notes["pytorch"])  # 1.2x slower is not an outlier


def test_a_calibration_with_an_impossible_cache_roof_still_ends_with_a_summary(tmp_path):
    """A calibration written with a cache roof slower than memory (2.5 against 27.6 GB/s, as once measured on a
    Zen 3) puts a small model's rows above their bound: those rows are kept out with their reason, and the
    summary of the run is written all the same."""
    paths = []
    for rec in (_with_shape(record("pytorch", 1, 5.45)), _with_shape(record("ort-fp32", 1, 3.0))):
        rec["architecture"] = {**DISTILBERT, "num_layers": 3, "hidden_size": 384, "intermediate_size": 1536}
        rec["hardware"], rec["sequence_length"] = "cpu", 16
        paths.append(tmp_path / f"results/cpu/m/bench/{rec['variant']}/b1_s16.json")
        paths[-1].parent.mkdir(parents=True)
        paths[-1].write_text(json.dumps(rec))
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"peak_gflops": {"fp32": 500.0}, "memory_roofs": {
        "last_level_cache_bytes": 32 * 2**20, "memory": {"roof_gbs": 27.6}, "cache": {"roof_gbs": 2.5}}}))
    out = {name: tmp_path / name for name in ("s.csv", "a.csv", "s.md", "e.json")}
    aggregate(paths, [], out["s.csv"], out["a.csv"], out["s.md"], out["e.json"], calibration_json=calibration)
    summary = pd.read_csv(out["s.csv"]).set_index("variant")
    assert set(summary["status"]) == {"above_bound"}
    assert summary.loc["pytorch", "failure"].startswith("kept out: cpu/m/pytorch at batch 1, sequence 16 ran in 5.45 ms")
    assert "cache roof" in summary.loc["pytorch", "failure"]
    assert "**kept out**" in out["s.md"].read_text()


def test_a_paired_speedup_counts_the_cycles_the_host_left_undisturbed():
    from inference_bench.report.aggregate import speedup_columns, summary_row

    host = {"counted": "undisturbed cycles", "disturbed_share": 1 / 3,
            "disturbed_cycles": [[False, True, False], [False, False, True]]}
    shape = {"hardware": "cpu", "model": "m", "batch_size": 1, "sequence_length": 16, "status": "ok",
             "comparison": {"id": "c1"}, "host": host}
    baseline = {**shape, "variant": "pytorch", "block_latencies_ms": [[[10.0]] * 3, [[10.0]] * 3],
                "round_latencies_ms": [[10.0] * 3, [10.0] * 3]}
    variant = {**shape, "variant": "ort-int8", "round_latencies_ms": [[5.0, 7.0, 5.0], [5.0, 5.0, 7.0]],
               "block_latencies_ms": [[[5.0], [7.0], [5.0]], [[5.0], [5.0], [7.0]]]}  # 7.0: disturbed cycles
    columns = speedup_columns(variant, {("cpu", "m", 1, 16): baseline})
    assert columns["speedup_paired"] is True
    assert columns["speedup_vs_pytorch"] == pytest.approx(2.0)
    row = summary_row(variant)
    assert row["host_disturbed_share"] == pytest.approx(1 / 3) and row["host_counted"] == "undisturbed cycles"
    # A comparison that counted every cycle (the default), or one from before the host probes, counts them all.
    everything = {**baseline, "host": {**host, "counted": "every cycle"}}
    old = {k: v for k, v in baseline.items() if k != "host"}
    for other in (everything, old):
        assert speedup_columns(variant, {("cpu", "m", 1, 16): other})["speedup_vs_pytorch"] < 1.9


def test_each_rows_process_speedups_are_the_replicates_of_its_speedup():
    """Per process, the paired speedup over the cycles the row counts: their geometric mean is the row's speedup,
    and a process with no counted cycle is left out, as the row's speedup leaves it out."""
    from inference_bench.report.aggregate import speedup_columns, summary_row

    shape = {"hardware": "cpu", "model": "m", "batch_size": 1, "sequence_length": 16, "status": "ok",
             "comparison": {"id": "c1"}}
    baseline = {**shape, "variant": "pytorch", "block_latencies_ms": [[[10.0], [12.0]], [[11.0], [10.0]], [[9.0], [9.0]]],
                "round_latencies_ms": [[10.0, 12.0], [11.0, 10.0], [9.0, 9.0]]}
    variant = {**shape, "variant": "ort-fp32", "block_latencies_ms": [[[5.0], [4.0]], [[5.5], [4.0]], [[3.0], [4.5]]],
               "round_latencies_ms": [[5.0, 4.0], [5.5, 4.0], [3.0, 4.5]]}
    columns = speedup_columns(variant, {("cpu", "m", 1, 16): baseline})
    replicates = [float(x) for x in columns["process_speedups"].split()]
    assert replicates == pytest.approx([(2.0 * 3.0) ** 0.5, (2.0 * 2.5) ** 0.5, (3.0 * 2.0) ** 0.5], rel=1e-5)
    assert float(np.exp(np.mean(np.log(replicates)))) == pytest.approx(columns["speedup_vs_pytorch"], rel=1e-5)
    assert summary_row(variant)["comparison_id"] == "c1"  # which processes the replicates belong to
    host = {"counted": "undisturbed cycles", "disturbed_cycles": [[True, True], [False, True], [False, False]]}
    undisturbed = speedup_columns({**variant, "host": host}, {("cpu", "m", 1, 16): {**baseline, "host": host}})
    assert [float(x) for x in undisturbed["process_speedups"].split()] == pytest.approx([2.0, 6 ** 0.5], rel=1e-5)
    # The baseline's own row, and rows not timed in one comparison, have none.
    assert speedup_columns(baseline, {("cpu", "m", 1, 16): baseline})["process_speedups"] is None
    apart = {**variant, "comparison": {"id": "c2"}}
    assert speedup_columns(apart, {("cpu", "m", 1, 16): baseline})["process_speedups"] is None
