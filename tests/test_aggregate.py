import json

import pandas as pd
import pytest

from conftest import record
from inference_bench.aggregate import aggregate, summarize
from inference_bench.tables import format_number, markdown_table


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
