"""Tiny encoders (2 layers, hidden 32) from BERT, DistilBERT and RoBERTa configs, built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "src"))

from inference_bench.models import ModelSpec, prepare_model_dir  # noqa: E402

TINY_OVERRIDES = {
    "distilbert": {"n_layers": 2, "dim": 32, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128},
    "bert": {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 128},
    "roberta": {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
                "max_position_embeddings": 130},
}
MODEL_TYPES = tuple(TINY_OVERRIDES)


def tiny_spec(model_type: str, seed: int = 0) -> ModelSpec:
    return ModelSpec(
        name=f"tiny-{model_type}", source="random", model_type=model_type,
        config_overrides=TINY_OVERRIDES[model_type], seed=seed,
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {t: prepare_model_dir(tiny_spec(t), base / t / "hf") for t in MODEL_TYPES}


@pytest.fixture(scope="session")
def tiny_exports(tiny_models, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """onnx-fp32 export and reference outputs for each tiny model."""
    from inference_bench.stages import export_stage, reference_stage

    base = tmp_path_factory.mktemp("exports")
    out = {}
    for model_type, model_dir in tiny_models.items():
        onnx_path = base / model_type / "onnx-fp32.onnx"
        reference = base / model_type / "reference.npz"
        reference_stage(model_dir, reference)
        export_stage(model_dir, onnx_path, reference, opset=17, attn_implementation="eager",
                     tolerance={"max_abs_diff": 1e-3, "min_cosine": 0.99999})
        out[model_type] = {"model_dir": model_dir, "onnx": onnx_path, "reference": reference}
    return out
