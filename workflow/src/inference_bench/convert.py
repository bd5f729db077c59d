"""FP16 conversion (onnxconverter-common); INT8 recipes are in inference_bench.quantize."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

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
    Path(onnx_out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(onnx_out))
    log.info("FP16 %s -> %s (keep_io_types=%s)", onnx_in, onnx_out, keep_io_types)

