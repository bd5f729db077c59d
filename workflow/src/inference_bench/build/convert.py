"""FP16 conversion (onnxconverter-common); INT8 recipes are in inference_bench.build.quantize."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def convert_to_fp16(
    onnx_in: str | Path, onnx_out: str | Path, keep_io_types: bool = True, op_block_list: Sequence[str] | None = None
) -> None:
    """FP16 weights and activations; with `keep_io_types` the graph still takes and returns FP32."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(onnx_in))
    kwargs = {"keep_io_types": keep_io_types}
    if op_block_list:
        kwargs["op_block_list"] = list(op_block_list)
    converted = float16.convert_float_to_float16(model, **kwargs)
    if keep_io_types:
        _read_outputs_before_their_cast(converted)
    Path(onnx_out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(onnx_out))
    log.info("FP16 %s -> %s (keep_io_types=%s)", onnx_in, onnx_out, keep_io_types)



def _read_outputs_before_their_cast(model) -> None:
    """With keep_io_types, each FP32 graph output is a Cast of the FP16 tensor that used to bear its name; a node
    that also read that output (a classifier's head reads the hidden state) is left reading the FP32 cast while
    typed for FP16. Point such readers at the FP16 tensor, as they read it before conversion."""
    outputs = {output.name for output in model.graph.output}
    before_cast = {node.output[0]: node.input[0] for node in model.graph.node
                   if node.op_type == "Cast" and node.output[0] in outputs}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in before_cast:
            continue
        for index, name in enumerate(node.input):
            if name in before_cast:
                node.input[index] = before_cast[name]
