"""Pipeline stages as the rules call them: make an artifact, gate it on parity, write its sidecar."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from inference_bench.artifacts import verify_artifact, write_sidecar
from inference_bench.errors import PipelineError
from inference_bench.graph_report import fused_operator_counts
from inference_bench.models import ArchitectureFacts
from inference_bench.parity import ParityReport, Tolerance, parity_of_onnx

log = logging.getLogger(__name__)


class FusionError(PipelineError, RuntimeError):
    """The optimized graph lacks fusions a BERT-family encoder of this depth should have."""


def _gate(onnx_path: str | Path, reference: str | Path, tolerance: dict[str, Any], what: str) -> ParityReport:
    report = parity_of_onnx(onnx_path, reference)
    log.info("%s parity: %s", what, report)
    report.check(Tolerance.from_config(tolerance), what)
    return report


def reference_stage(model_dir: str | Path, reference_out: str | Path, seed: int = 0) -> None:
    from inference_bench.reference import compute_reference

    compute_reference(model_dir, reference_out, seed=seed)


def export_stage(
    model_dir: str | Path,
    onnx_out: str | Path,
    reference: str | Path,
    opset: int,
    attn_implementation: str,
    tolerance: dict[str, Any],
    exporter: str = "torchscript",
) -> None:
    from inference_bench.export import export_onnx

    report = export_onnx(
        model_dir, onnx_out, reference, opset=opset, attn_implementation=attn_implementation,
        tolerance=Tolerance.from_config(tolerance), exporter=exporter,
    )
    write_sidecar(
        onnx_out, stage="export_onnx", exporter=exporter, opset=opset, attn_implementation=attn_implementation,
        parity=report.as_dict(),
    )


def optimize_stage(
    onnx_in: str | Path,
    onnx_out: str | Path,
    model_dir: str | Path,
    reference: str | Path,
    opt_level: int,
    require_full_fusion: bool,
    tolerance: dict[str, Any],
    onnxscript_fusions: bool = False,
) -> dict[str, int]:
    from inference_bench.optimize import UnknownModelTypeError, expected_fusions, fusion_shortfall, optimize_onnx

    verify_artifact(onnx_in)
    facts = ArchitectureFacts.from_model_dir(model_dir)
    try:
        counts = optimize_onnx(
            onnx_in, onnx_out, facts, opt_level=opt_level, onnxscript_fusions=onnxscript_fusions
        )
    except UnknownModelTypeError as error:
        if require_full_fusion:
            raise FusionError(
                f"{error}. Set optimize.require_full_fusion: false to benchmark the unfused graph under "
                f"{Path(onnx_out).name}, or drop the ort-* variants for this model."
            ) from error
        # Documented choice: fall back to the plain graph, loudly, rather than stop the whole run.
        log.warning("%s; %s is the unfused graph", error, Path(onnx_out).name)
        shutil.copyfile(onnx_in, onnx_out)
        counts = {}
    shortfall = fusion_shortfall(counts, facts)
    if shortfall and require_full_fusion:
        missing = ", ".join(f"{op} {found}/{want}" for op, (found, want) in shortfall.items())
        raise FusionError(
            f"{Path(onnx_out).name}: incomplete fusion for a {facts.num_layers}-layer {facts.model_type} "
            f"(found/expected: {missing}); set optimize.require_full_fusion: false to accept it"
        )
    if shortfall:
        log.warning("incomplete fusion accepted by config: %s", shortfall)
    report = _gate(onnx_out, reference, tolerance, f"optimized {Path(onnx_out).name}")
    write_sidecar(
        onnx_out,
        stage="optimize_ort",
        source=Path(onnx_in).name,
        opt_level=opt_level,
        onnxscript_fusions=onnxscript_fusions,
        fused_operators=counts,
        expected_fusions=expected_fusions(facts),
        fusion_shortfall={op: {"found": f, "expected": w} for op, (f, w) in shortfall.items()},
        parity=report.as_dict(),
    )
    return counts


def _converted_stage(
    onnx_in: str | Path,
    onnx_out: str | Path,
    reference: str | Path,
    tolerance: dict[str, Any],
    convert: Callable[[], None],
    stage: str,
    what: str,
    **settings: Any,
) -> None:
    """The shape of every conversion: check the source, convert, gate on parity, write the sidecar (with the
    settings that made the file)."""
    verify_artifact(onnx_in)
    convert()
    report = _gate(onnx_out, reference, tolerance, f"{what} {Path(onnx_out).name}")
    write_sidecar(
        onnx_out,
        stage=stage,
        source=Path(onnx_in).name,
        fused_operators=fused_operator_counts(onnx_out),
        **settings,
        parity=report.as_dict(),
    )


def fp16_stage(
    onnx_in: str | Path,
    onnx_out: str | Path,
    reference: str | Path,
    keep_io_types: bool,
    op_block_list: Sequence[str],
    tolerance: dict[str, Any],
) -> None:
    from inference_bench.convert import convert_to_fp16

    _converted_stage(
        onnx_in, onnx_out, reference, tolerance,
        lambda: convert_to_fp16(onnx_in, onnx_out, keep_io_types=keep_io_types, op_block_list=op_block_list),
        stage="convert_fp16", what="FP16", keep_io_types=keep_io_types, op_block_list=list(op_block_list),
    )


def int8_stage(
    onnx_in: str | Path,
    onnx_out: str | Path,
    reference: str | Path,
    per_channel: bool,
    reduce_range: bool,
    tolerance: dict[str, Any],
) -> None:
    from inference_bench.convert import quantize_to_int8

    _converted_stage(
        onnx_in, onnx_out, reference, tolerance,
        lambda: quantize_to_int8(onnx_in, onnx_out, per_channel=per_channel, reduce_range=reduce_range),
        stage="quantize_int8", what="INT8", per_channel=per_channel, reduce_range=reduce_range,
    )
