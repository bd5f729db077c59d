"""What an ONNX graph holds: how many of each fused operator ONNX Runtime's fusions (or quantization) left."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

#: Contrib operators the fusions produce (what the fused-operator report counts).
FUSED_OPERATORS = (
    "EmbedLayerNormalization",
    "Attention",
    "MultiHeadAttention",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "BiasGelu",
    "FastGelu",
    "Gelu",
    "QuickGelu",
    # What dynamic INT8 quantization turns them into.
    "QAttention",
    "QEmbedLayerNormalization",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
)


def fused_operator_counts(onnx_path: str | Path) -> dict[str, int]:
    """How many nodes of each fused operator the graph holds."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    counts = Counter(node.op_type for node in graph.node if node.op_type in FUSED_OPERATORS)
    return {op: counts[op] for op in FUSED_OPERATORS if counts[op]}
