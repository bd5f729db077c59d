import json

import pytest

from inference_bench.models import ArchitectureFacts
from inference_bench.build.optimize import expected_fusions
from inference_bench.build.stages import FusionError, fp16_stage, int8_stage, optimize_stage

FP32 = {"max_abs_diff": 1e-3, "min_cosine": 0.99999}


def _sidecar(path):
    return json.loads(path.with_suffix(".json").read_text())


@pytest.mark.parametrize("model_type", ["distilbert", "bert", "roberta"])
def test_optimize_fuses_every_layer(tiny_exports, tmp_path, model_type):
    paths = tiny_exports[model_type]
    out = tmp_path / "ort-fp32.onnx"
    counts = optimize_stage(paths["onnx"], out, paths["model_dir"], paths["reference"], opt_level=0,
                            require_full_fusion=True, tolerance=FP32)
    facts = ArchitectureFacts.from_model_dir(paths["model_dir"])
    assert counts["EmbedLayerNormalization"] == 1
    assert counts["Attention"] == facts.num_layers
    assert counts["SkipLayerNormalization"] == 2 * facts.num_layers
    sidecar = _sidecar(out)
    assert sidecar["fused_operators"] == counts
    assert sidecar["fusion_shortfall"] == {}
    assert sidecar["expected_fusions"] == expected_fusions(facts)


def test_incomplete_fusion_fails_naming_the_operator(tiny_models, tmp_path):
    # Exported with SDPA attention, the graph guards the softmax with IsNaN/Where and no Attention fuses.
    from inference_bench.build.stages import export_stage, reference_stage

    onnx_path, reference = tmp_path / "onnx-fp32.onnx", tmp_path / "reference.npz"
    reference_stage(tiny_models["bert"], reference)
    export_stage(tiny_models["bert"], onnx_path, reference, opset=17, attn_implementation="sdpa", tolerance=FP32)
    with pytest.raises(FusionError, match=r"Attention 0/2.*require_full_fusion"):
        optimize_stage(onnx_path, tmp_path / "ort.onnx", tiny_models["bert"], reference, opt_level=0,
                       require_full_fusion=True, tolerance=FP32)
    optimize_stage(onnx_path, tmp_path / "ort.onnx", tiny_models["bert"], reference, opt_level=0,
                   require_full_fusion=False, tolerance=FP32)
    assert _sidecar(tmp_path / "ort.onnx")["fusion_shortfall"]["Attention"] == {"found": 0, "expected": 2}


def test_fp16_halves_the_file_and_keeps_fp32_io(tiny_exports, tmp_path):
    import onnx

    paths = tiny_exports["distilbert"]
    out = tmp_path / "onnx-fp16.onnx"
    fp16_stage(paths["onnx"], out, paths["reference"], keep_io_types=True, op_block_list=[],
               tolerance={"max_abs_diff": 0.05, "min_cosine": 0.999})
    sidecar = _sidecar(out)
    assert sidecar["file_bytes"] < 0.6 * paths["onnx"].stat().st_size
    assert sidecar["parity"]["min_token_cosine"] > 0.999
    graph = onnx.load(str(out)).graph
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)


def test_int8_quantizes_the_fused_model(tiny_exports, tmp_path):
    paths = tiny_exports["bert"]
    fused = tmp_path / "ort-fp32.onnx"
    optimize_stage(paths["onnx"], fused, paths["model_dir"], paths["reference"], opt_level=0,
                   require_full_fusion=True, tolerance=FP32)
    out = tmp_path / "ort-int8.onnx"
    int8_stage(fused, out, paths["reference"], per_channel=False, reduce_range=False,
               tolerance={"max_abs_diff": None, "min_cosine": 0.99})
    sidecar = _sidecar(out)
    assert sidecar["file_bytes"] < 0.5 * fused.stat().st_size
    assert 0.99 < sidecar["parity"]["min_token_cosine"] < 1.0


def test_int8_past_threshold_fails(tiny_exports, tmp_path):
    from inference_bench.build.parity import ParityError

    paths = tiny_exports["bert"]
    with pytest.raises(ParityError, match="INT8 .*min per-token cosine"):
        int8_stage(paths["onnx"], tmp_path / "q.onnx", paths["reference"], per_channel=False, reduce_range=False,
                   tolerance={"max_abs_diff": None, "min_cosine": 0.9999999})


def test_fusion_after_fp16_fuses_as_fully(tiny_exports, tmp_path):
    paths = tiny_exports["distilbert"]
    fp16 = tmp_path / "onnx-fp16.onnx"
    fp16_stage(paths["onnx"], fp16, paths["reference"], keep_io_types=True, op_block_list=[],
               tolerance={"max_abs_diff": 0.05, "min_cosine": 0.999})
    counts = optimize_stage(fp16, tmp_path / "fp16-ort.onnx", paths["model_dir"], paths["reference"], opt_level=0,
                            require_full_fusion=True, tolerance={"max_abs_diff": 0.05, "min_cosine": 0.999})
    assert counts["Attention"] == 2 and counts["EmbedLayerNormalization"] == 1


def test_distilbert_base_shape_fuses_fully(tmp_path):
    """The default model at full size: 6 layers, 12 heads, hidden 768 (random weights)."""
    from inference_bench.models import ModelSpec, prepare_model_dir
    from inference_bench.build.stages import export_stage, reference_stage

    model_dir = prepare_model_dir(ModelSpec(name="distilbert-base", model_type="distilbert"), tmp_path / "hf")
    onnx_path, reference = tmp_path / "onnx-fp32.onnx", tmp_path / "reference.npz"
    reference_stage(model_dir, reference)
    export_stage(model_dir, onnx_path, reference, opset=17, attn_implementation="eager", tolerance=FP32)
    counts = optimize_stage(onnx_path, tmp_path / "ort-fp32.onnx", model_dir, reference, opt_level=0,
                            require_full_fusion=True, tolerance=FP32)
    assert counts == {"EmbedLayerNormalization": 1, "Attention": 6, "BiasGelu": 6, "SkipLayerNormalization": 12}


@pytest.mark.parametrize("model_type", ["distilbert", "bert", "roberta"])
@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_dynamo_export_with_onnxscript_fusions(tiny_models, tmp_path, model_type, attn_implementation):
    from inference_bench.build.optimize import fusion_shortfall
    from inference_bench.build.stages import export_stage, reference_stage

    model_dir = tiny_models[model_type]
    onnx_path, reference = tmp_path / "onnx-fp32.onnx", tmp_path / "reference.npz"
    reference_stage(model_dir, reference)
    export_stage(model_dir, onnx_path, reference, opset=18, attn_implementation=attn_implementation,
                 tolerance=FP32, exporter="dynamo")
    counts = optimize_stage(onnx_path, tmp_path / "ort-fp32.onnx", model_dir, reference, opt_level=0,
                            require_full_fusion=False, tolerance=FP32, onnxscript_fusions=True)
    # Attention fuses either way (MultiHeadAttention from SDPA graphs), which TorchScript + SDPA never does.
    assert counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0) == 2
    shortfall = fusion_shortfall(counts, ArchitectureFacts.from_model_dir(model_dir))
    assert _sidecar(tmp_path / "ort-fp32.onnx")["fusion_shortfall"] == {
        op: {"found": f, "expected": w} for op, (f, w) in shortfall.items()}


def test_dynamo_needs_opset_18(tiny_models, tmp_path):
    from inference_bench.build.stages import export_stage

    with pytest.raises(ValueError, match="dynamo exporter needs export.opset >= 18, got 17"):
        export_stage(tiny_models["bert"], tmp_path / "m.onnx", tmp_path / "r.npz", opset=17,
                     attn_implementation="eager", tolerance=FP32, exporter="dynamo")


def test_an_fp16_conversion_job_does_not_import_torch(tiny_exports, tmp_path):
    """ONNX-only jobs stay light: the conversion and its parity gate need ONNX and ONNX Runtime, not torch."""
    import subprocess
    import sys

    from conftest import ROOT

    paths = tiny_exports["bert"]
    script = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'workflow' / 'scripts')!r}); import _common\n"
        "from inference_bench.build.stages import fp16_stage\n"
        f"fp16_stage({str(paths['onnx'])!r}, {str(tmp_path / 'onnx-fp16.onnx')!r}, {str(paths['reference'])!r},"
        " True, [], {'max_abs_diff': 0.05, 'min_cosine': 0.999})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "onnx-fp16.json").is_file()
