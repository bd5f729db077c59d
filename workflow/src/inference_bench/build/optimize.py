"""ONNX Runtime graph optimization (operator fusion) and the fused-operator report."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from inference_bench.errors import PipelineError
from inference_bench.build.graph_report import fused_operator_counts
from inference_bench.models import ArchitectureFacts

log = logging.getLogger(__name__)

#: Hugging Face model types whose encoder the ONNX Runtime "bert" fusions understand.
BERT_FAMILY: frozenset[str] = frozenset(
    {"bert", "distilbert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "mpnet", "xlm"}
)


class UnknownModelTypeError(PipelineError, ValueError):
    """ONNX Runtime's optimizer has no fusion recipe for this model type."""


def optimizer_model_type(hf_model_type: str) -> str:
    """The onnxruntime.transformers optimizer's name for a Hugging Face model type."""
    if hf_model_type in BERT_FAMILY:
        return "bert"
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    if hf_model_type in MODEL_TYPES:
        return hf_model_type
    raise UnknownModelTypeError(
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
    onnx_in: str | Path,
    onnx_out: str | Path,
    facts: ArchitectureFacts,
    opt_level: int = 0,
    onnxscript_fusions: bool = False,
) -> dict[str, int]:
    """Fuse with heads and hidden size from the model's config; return fused-operator counts.

    With `onnxscript_fusions` (graphs from the dynamo exporter), onnxscript's ORT fusions run first and
    ONNX Runtime's optimizer then adds what they leave (EmbedLayerNormalization); where ONNX Runtime's
    optimizer cannot take their graph, onnxscript's result is kept and the warning says why.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    onnx_out = Path(onnx_out)
    onnx_out.parent.mkdir(parents=True, exist_ok=True)
    source = Path(onnx_in)
    if onnxscript_fusions:
        source = onnx_out.with_name(f".{onnx_out.stem}.onnxscript.onnx")
        _onnxscript_fusions(onnx_in, source)
    try:
        model = optimize_model(
            str(source),
            model_type=optimizer_model_type(facts.model_type),
            num_heads=facts.num_heads,
            hidden_size=facts.hidden_size,
            opt_level=opt_level,
            use_gpu=False,
        )
        model.save_model_to_file(str(onnx_out))
    except Exception as error:
        if not onnxscript_fusions:
            raise
        log.warning("ONNX Runtime's fusions failed on onnxscript's graph (%s: %s); keeping onnxscript's fusions",
                    type(error).__name__, error)
        shutil.copyfile(source, onnx_out)
    finally:
        if onnxscript_fusions:
            source.unlink(missing_ok=True)
    counts = fused_operator_counts(onnx_out)
    log.info("fused %s -> %s: %s", onnx_in, onnx_out, counts)
    return counts


def _onnxscript_fusions(onnx_in: str | Path, onnx_out: Path) -> None:
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model, applied = optimize_for_ort(ir.load(str(onnx_in)))
    log.info("onnxscript ORT fusions applied: %s", {k: v for k, v in applied.items() if v})
    ir.save(model, str(onnx_out))
