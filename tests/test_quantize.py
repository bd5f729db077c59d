"""INT8 recipes (dynamic, static, mixed) and the search that keeps the fewest MatMuls in FP32."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inference_bench.build import quantize
from inference_bench.inputs.corpus import calibration_texts, evaluation_texts, load_corpus
from inference_bench.build.parity import compare_hidden_states
from inference_bench.build.stages import int8_stage
from inference_bench.variants import ARTIFACTS

INT8_FLOOR = {"max_abs_diff": None, "min_cosine": 0.9}


def _ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


@pytest.mark.parametrize(("recipe", "mixed_base", "method"), [
    ("dynamic", None, "minmax"), ("static", None, "minmax"), ("static", None, "entropy"),
    ("static", None, "percentile"), ("mixed", "dynamic", "minmax"), ("mixed", "static", "minmax")])
def test_each_recipe_makes_a_gated_int8_file_with_its_settings(tiny_exports, tmp_path, recipe, mixed_base, method):
    paths = tiny_exports["bert"]
    out = tmp_path / f"{recipe}.onnx"
    int8_stage(paths["onnx"], out, paths["reference"], per_channel=True, reduce_range=False, tolerance=INT8_FLOOR,
               recipe=recipe, model_dir=paths["model_dir"], calibration_method=method,
               mixed_base=mixed_base or "dynamic")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["recipe"] == recipe and sidecar["parity"]["min_token_cosine"] > 0.99
    ops = _ops(out)
    if "static" in (recipe, mixed_base):
        # QDQ around the weight MatMuls, activation ranges fixed ahead of time: no run-time quantization.
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops
        assert sidecar["calibration_method"] == method and "random token ids" in sidecar["calibration"]
    else:
        assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    if recipe == "mixed":
        # A tiny random model keeps the floor with every MatMul in INT8: nothing is kept, nothing searched.
        search = sidecar["mixed_precision"]
        assert search["passed"] and search["kept_fp32"] == [] and search["metric"] == "min_token_cosine"
        assert search["matmuls"] == len(quantize.weight_matmuls(paths["onnx"])) > 0


def test_every_int8_artifact_names_its_recipe():
    int8 = [a for a in ARTIFACTS.values() if a.stage == "int8"]
    assert {a.recipe for a in int8} == {"dynamic", "static", "mixed"}
    assert all(a.recipe is None for a in ARTIFACTS.values() if a.stage != "int8")


def test_an_unknown_calibration_method_is_refused(tiny_exports, tmp_path):
    with pytest.raises(ValueError, match="unknown calibration method 'kl'"):
        quantize.quantize_static_int8(tiny_exports["bert"]["onnx"], tmp_path / "x.onnx", [{}], method="kl")


def test_calibration_and_accuracy_texts_are_disjoint_and_cover_the_corpus():
    corpus = load_corpus()
    calibration, evaluation = calibration_texts(corpus), evaluation_texts(corpus)
    assert len(calibration) + len(evaluation) == len(corpus) and len(calibration) >= 50
    assert not set(calibration) & set(evaluation)


# --- the search, on a graph made sensitive on purpose ------------------------------------------------------

WIDTH, LAYERS, OUTLIER_LAYER = 16, 4, 2


def _chain_with_an_outlier(path) -> list[str]:
    """Y = X W0 W1 W2 W3, where W1 writes one channel 10^4 times larger and W2 scales it back down: the output
    is ordinary, but the input of MatMul 2 has one huge channel. Dynamic INT8 quantizes that input per tensor,
    so its other channels round to zero: MatMul 2, and only it, must stay in FP32."""
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(WIDTH, WIDTH)).astype(np.float32) / np.sqrt(WIDTH) for _ in range(LAYERS)]
    weights[OUTLIER_LAYER - 1][:, 0] *= 1e4
    weights[OUTLIER_LAYER][0, :] *= 1e-4
    names = [f"matmul_{i}" for i in range(LAYERS)]
    nodes = [helper.make_node("MatMul", ["X" if i == 0 else f"h{i}", f"W{i}"], [f"h{i + 1}" if i < LAYERS - 1
                                                                               else "Y"], name=names[i])
             for i in range(LAYERS)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", "seq", WIDTH])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", "seq", WIDTH])],
        [numpy_helper.from_array(w, f"W{i}") for i, w in enumerate(weights)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return names


def _cosine_scorer(reference_path):
    from inference_bench.build.ort_session import make_session

    x = np.random.default_rng(1).normal(size=(4, 8, WIDTH)).astype(np.float32)
    mask = np.ones((4, 8), dtype=np.int64)
    reference = make_session(reference_path).run(None, {"X": x})[0]
    return lambda path: compare_hidden_states(reference, make_session(path).run(None, {"X": x})[0], mask).min_token_cosine


def test_the_search_keeps_exactly_the_sensitive_matmul_in_fp32(tmp_path):
    """With 7-bit weights (reduce_range) no u8 x s8 pair sum can saturate ONNX Runtime's AVX2 kernel (VNNI's
    never does), so every CPU computes the same integers and the same MatMul is the sensitive one on all."""
    source = tmp_path / "chain.onnx"
    names = _chain_with_an_outlier(source)
    assert quantize.weight_matmuls(source) == names
    score = _cosine_scorer(source)

    def candidate(keep, out):
        quantize.quantize_dynamic_int8(source, out, per_channel=True, reduce_range=True, keep_fp32=keep)

    everything = tmp_path / "all.onnx"
    candidate([], everything)
    assert score(everything) < 0.99  # the chain is sensitive: all-INT8 misses the gate
    found = quantize.search_fp32_matmuls(names, candidate, score, gate=0.99, metric="min_token_cosine",
                                         scratch=tmp_path)
    assert found.kept_fp32 == [f"matmul_{OUTLIER_LAYER}"] and found.passed and found.score >= 0.99
    assert max(found.sensitivity, key=found.sensitivity.get) == f"matmul_{OUTLIER_LAYER}"
    assert found.score_all_int8 < 0.99 and found.tried[0] == {"kept": 0, "score": found.score_all_int8}
    kept = tmp_path / "kept.onnx"
    candidate(found.kept_fp32, kept)
    graph = onnx.load(str(kept)).graph
    float_matmuls = [node.name for node in graph.node if node.op_type == "MatMul"]
    assert float_matmuls == [f"matmul_{OUTLIER_LAYER}"]  # the others are INT8 in the file that is written


def test_the_search_bisects_to_the_fewest_matmuls():
    """Score = 1 minus the penalties of the MatMuls left quantized; the gate needs the three worst kept."""
    penalties = {"a": 0.001, "b": 0.05, "c": 0.002, "d": 0.03, "e": 0.04, "f": 0.001, "g": 0.0, "h": 0.003}
    candidates: dict[str, list[str]] = {}

    def candidate(keep, out):
        candidates[out.name] = list(keep)

    def score(path):
        return 1.0 - sum(p for name, p in penalties.items() if name not in candidates[path.name])

    found = quantize.search_fp32_matmuls(list(penalties), candidate, score, gate=0.985, metric="m", scratch="/nonexistent")
    assert found.kept_fp32 == ["b", "e", "d"] and found.passed
    assert found.sensitivity == pytest.approx(penalties)
    assert len(found.tried) <= 1 + 4  # all-INT8, then a bisection over 8: not one try per count


def test_a_recipe_that_passes_at_once_keeps_nothing_and_scores_once():
    calls = []

    def candidate(keep, out):
        calls.append(list(keep))

    found = quantize.search_fp32_matmuls(["a", "b"], candidate, lambda path: 0.999, gate=0.99, metric="m",
                                         scratch="/nonexistent")
    assert found.passed and found.kept_fp32 == [] and calls == [[]] and found.sensitivity == {}


def test_when_no_mix_reaches_the_gate_the_best_tried_is_kept_and_the_summary_says_so(tiny_exports, tmp_path,
                                                                                      monkeypatch, caplog):
    """No mix passes: the run goes on (the stage writes the best mix it tried, its sidecar says the search did not
    pass), and the summary's notes say in one line that no INT8 of the model passes."""
    import json

    from inference_bench.report.aggregate import artifact_table, int8_search_notes

    paths = tiny_exports["bert"]
    monkeypatch.setattr(quantize, "fp32_scorer", lambda onnx_fp32, calibration: ((lambda path: 0.5), "m"))
    out = tmp_path / "onnx-int8-mixed.onnx"
    int8_stage(paths["onnx"], out, paths["reference"], per_channel=True, reduce_range=False,
               tolerance=INT8_FLOOR, recipe="mixed", model_dir=paths["model_dir"])
    search = json.loads(out.with_suffix(".json").read_text())["mixed_precision"]
    assert out.is_file() and search["passed"] is False and search["score"] == 0.5
    assert any("no mix of FP32 and INT8 MatMuls reaches m 0.9" in r.getMessage() for r in caplog.records
               if r.levelname == "WARNING")
    artifacts = artifact_table([out.with_suffix(".json")])
    assert artifacts.loc[0, "fp32_matmuls"].startswith(f"{len(search['kept_fp32'])} of {search['matmuls']}")
    (note,) = int8_search_notes("tiny-bert", artifacts)
    assert note.startswith("No INT8 of tiny-bert passes the accuracy gate")


def test_histogram_methods_calibrate_on_batches_of_one_shape():
    """Entropy and percentile stack every batch's activations: texts of many lengths must come as one shape."""
    lengths = [3, 40, 7, 128, 90, 12, 64, 5, 100, 33]
    mask = np.zeros((len(lengths), 128), dtype=np.int64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    calibration = quantize.CalibrationSet({"input_ids": mask * 7, "attention_mask": mask}, True, "test")
    assert len({batch["input_ids"].shape for batch in calibration.batches(4)}) > 1  # minmax: cut by length
    uniform = calibration.uniform_batches(4)
    assert [batch["input_ids"].shape for batch in uniform] == [(4, 128), (4, 128)]  # the remainder dropped
    assert len(calibration.uniform_batches(16)) == 1 and calibration.uniform_batches(16)[0]["input_ids"].shape[0] == 10
