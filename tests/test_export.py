import json

import numpy as np
import onnx
import pytest

from conftest import MODEL_TYPES
from inference_bench.inputs.batches import timing_inputs
from inference_bench.models import ArchitectureFacts, load_torch_model
from inference_bench.build.ort_session import make_session, run_once
from inference_bench.build.parity import ParityError
from inference_bench.build.reference import load_reference
from inference_bench.build.stages import export_stage


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_export_passes_checker_and_parity(tiny_exports, model_type):
    paths = tiny_exports[model_type]
    onnx.checker.check_model(str(paths["onnx"]))
    sidecar = json.loads(paths["onnx"].with_suffix(".json").read_text())
    assert sidecar["file_bytes"] == paths["onnx"].stat().st_size
    assert len(sidecar["sha256"]) == 64
    assert sidecar["opset"] == 17
    assert {"torch", "onnx", "onnxruntime", "transformers"} <= set(sidecar["versions"])
    assert sidecar["parity"]["max_abs_diff"] < 1e-4
    assert sidecar["parity"]["min_token_cosine"] > 0.99999


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_reference_has_padding(tiny_exports, model_type):
    feeds, output = load_reference(tiny_exports[model_type]["reference"])
    mask = feeds["attention_mask"]
    assert (mask == 0).any() and len(set(mask.sum(axis=1))) > 1
    assert output.shape[:2] == mask.shape


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize(("batch", "seq"), [(1, 8), (3, 100)])
def test_export_has_dynamic_batch_and_sequence(tiny_exports, model_type, batch, seq):
    import torch

    paths = tiny_exports[model_type]
    facts = ArchitectureFacts.from_model_dir(paths["model_dir"])
    session = make_session(paths["onnx"])
    names = [i.name for i in session.get_inputs()]
    feeds = timing_inputs(facts, names, batch, seq, seed=1)
    onnx_out = run_once(session, feeds)
    with torch.no_grad():
        model = load_torch_model(paths["model_dir"])
        torch_out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
    assert onnx_out.shape == (batch, seq, facts.hidden_size)
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)


def test_export_beyond_tolerance_fails_and_says_by_how_much(tiny_exports, tmp_path):
    paths = tiny_exports["bert"]
    with pytest.raises(ParityError, match=r"diverges from PyTorch FP32: max abs diff \S+ > 1e-12 allowed"):
        export_stage(paths["model_dir"], tmp_path / "m.onnx", paths["reference"], opset=17,
                     attn_implementation="eager", tolerance={"max_abs_diff": 1e-12, "min_cosine": 0.9})


def test_timing_inputs_refuse_sequences_longer_than_the_model(tiny_models):
    facts = ArchitectureFacts.from_model_dir(tiny_models["bert"])
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings"):
        timing_inputs(facts, ["input_ids"], 1, facts.max_positions + 1, seed=0)
