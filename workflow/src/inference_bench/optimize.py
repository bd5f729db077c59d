"""ONNX Runtime graph optimization (operator fusion) and the fused-operator report."""

from __future__ import annotations

import logging
from pathlib import Path

from inference_bench.models import ArchitectureFacts

log = logging.getLogger(__name__)

#: Hugging Face model types whose encoder the ONNX Runtime "bert" fusions understand.
BERT_FAMILY: frozenset[str] = frozenset(
    {"bert", "distilbert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "mpnet", "xlm"}
)


def optimizer_model_type(hf_model_type: str) -> str:
    """The onnxruntime.transformers optimizer's name for a Hugging Face model type."""
    if hf_model_type in BERT_FAMILY:
        return "bert"
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    if hf_model_type in MODEL_TYPES:
        return hf_model_type
    raise ValueError(
        f"model type {hf_model_type!r} has no ONNX Runtime fusion recipe "
        f"(known: {', '.join(sorted(BERT_FAMILY | set(MODEL_TYPES)))})"
    )


def expected_fusions(facts: ArchitectureFacts) -> dict[str, int]:
    """What a fully fused BERT-family encoder holds: one embedding fusion, then per layer one attention,
    one GELU and two skip-layer-norms."""
    layers = facts.num_layers
    return {"EmbedLayerNormalization": 1, "Attention": layers, "Gelu": layers, "SkipLayerNormalization": 2 * layers}


def fusion_shortfall(counts: dict[str, int], facts: ArchitectureFacts) -> dict[str, tuple[int, int]]:
    """{operator: (found, expected)} for every fusion below what the model's layer count calls for.

    Attention and MultiHeadAttention count together, as do the GELU flavours and both
    SkipLayerNormalization spellings.
    """
    merged = {
        "EmbedLayerNormalization": counts.get("EmbedLayerNormalization", 0),
        "Attention": counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0),
        "Gelu": sum(counts.get(op, 0) for op in ("Gelu", "FastGelu", "BiasGelu", "QuickGelu")),
        "SkipLayerNormalization": counts.get("SkipLayerNormalization", 0)
        + counts.get("SkipSimplifiedLayerNormalization", 0),
    }
    return {op: (merged[op], want) for op, want in expected_fusions(facts).items() if merged[op] < want}


def optimize_onnx(
    onnx_in: str | Path, onnx_out: str | Path, facts: ArchitectureFacts, opt_level: int = 0
) -> dict[str, int]:
    """Fuse with heads and hidden size from the model's config; return fused-operator counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(
        str(onnx_in),
        model_type=optimizer_model_type(facts.model_type),
        num_heads=facts.num_heads,
        hidden_size=facts.hidden_size,
        opt_level=opt_level,
        use_gpu=False,
    )
    counts = {op: int(n) for op, n in model.get_fused_operator_statistics().items() if n}
    Path(onnx_out).parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(onnx_out))
    log.info("fused %s -> %s: %s", onnx_in, onnx_out, counts)
    return counts
