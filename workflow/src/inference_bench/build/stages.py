"""Pipeline stages as the rules call them: make an artifact, gate it on parity, write its sidecar."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inference_bench.artifacts import verify_artifact, write_sidecar
from inference_bench.environment import library_versions
from inference_bench.errors import PipelineError
from inference_bench.build.graph_report import fused_operator_counts
from inference_bench.models import ArchitectureFacts
from inference_bench.build.parity import ParityError, ParityReport, Tolerance, parity_of_onnx

log = logging.getLogger(__name__)


class FusionError(PipelineError, RuntimeError):
    """The optimized graph lacks fusions a BERT-family encoder of this depth should have."""


def _gate(onnx_path: str | Path, reference: str | Path, tolerance: dict[str, Any], what: str) -> ParityReport:
    report = parity_of_onnx(onnx_path, reference)
    log.info("%s parity: %s", what, report)
    report.check(Tolerance.from_config(tolerance), what)
    return report


def reference_stage(model_dir: str | Path, reference_out: str | Path, seed: int = 0) -> None:
    from inference_bench.build.reference import compute_reference

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
    from inference_bench.build.export import export_onnx

    report = export_onnx(
        model_dir, onnx_out, reference, opset=opset, attn_implementation=attn_implementation,
        tolerance=Tolerance.from_config(tolerance), exporter=exporter,
    )
    write_sidecar(
        onnx_out, versions=library_versions(), stage="export_onnx", exporter=exporter, opset=opset,
        attn_implementation=attn_implementation, parity=report.as_dict(),
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
    from inference_bench.build.optimize import UnknownModelTypeError, expected_fusions, fusion_shortfall, optimize_onnx

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
        versions=library_versions(),
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
        versions=library_versions(),
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
    from inference_bench.build.convert import convert_to_fp16

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
    recipe: str = "dynamic",
    model_dir: str | Path | None = None,
    calibration_method: str = "minmax",
    mixed_base: str = "dynamic",
    mixed_margin: float = 0.002,
    min_relative: float = 0.99,
    max_length: int = 512,
    seed: int = 0,
) -> None:
    """One INT8 recipe of inference_bench.build.quantize. Static and mixed read `model_dir` for their calibration
    set (the corpus's calibration texts where the model has a tokenizer); mixed keeps the task metric at
    `min_relative` of FP32 on it (text), or the parity floor's min_cosine (no tokenizer), starting from the
    `mixed_base` recipe (dynamic or static)."""
    from inference_bench.build import quantize

    settings: dict[str, Any] = {"recipe": recipe, "per_channel": per_channel, "reduce_range": reduce_range}
    if recipe == "dynamic":
        convert = lambda: quantize.quantize_dynamic_int8(onnx_in, onnx_out, per_channel, reduce_range)
        _converted_stage(onnx_in, onnx_out, reference, tolerance, convert, stage="quantize_int8", what="INT8",
                         **settings)
        return
    if model_dir is None:
        raise ValueError(f"the {recipe} INT8 recipe needs the model directory for its calibration set")
    inputs = _graph_inputs(onnx_in)
    calibration = quantize.calibration_set(model_dir, inputs, max_length, seed + 1)
    settings["calibration"] = calibration.description

    def calibration_for(length: int) -> quantize.CalibrationSet:  # minmax reads the set above: tokenized once
        return calibration if length == max_length else quantize.calibration_set(model_dir, inputs, length, seed + 1)

    def static_batches() -> list[dict[str, Any]]:
        return quantize.calibration_batches(calibration_for, calibration_method, max_length)

    if recipe == "static":
        settings["calibration_method"] = calibration_method
        convert = lambda: quantize.quantize_static_int8(
            onnx_in, onnx_out, static_batches(), calibration_method, per_channel, reduce_range)
        try:
            _converted_stage(onnx_in, onnx_out, reference, tolerance, convert, stage="quantize_int8", what="INT8",
                             **settings)
        except ParityError as error:
            raise ParityError(
                f"{error}. Static INT8 of every MatMul fails on this model (one calibrated range per tensor cannot "
                f"hold outlier activations): drop {Path(onnx_out).stem} from the tag's variants, or time "
                f"onnx-int8-mixed with int8.mixed_base: static, which keeps the sensitive MatMuls in FP32"
            ) from error
        return
    if recipe != "mixed":
        raise ValueError(f"unknown INT8 recipe {recipe!r}")
    score, metric = quantize.fp32_scorer(onnx_in, calibration)
    # The search steers by the calibration texts; the accuracy stage then judges on the others, so the search
    # aims `mixed_margin` above the gate for what a sample of text does not promise about the rest.
    gate = (min_relative + mixed_margin) if calibration.text else float(tolerance["min_cosine"])
    search_result: dict[str, Any] = {}

    settings["mixed_base"] = mixed_base
    if mixed_base == "static":
        settings["calibration_method"] = calibration_method
    batches = static_batches() if mixed_base == "static" else []

    def convert() -> None:
        def candidate(keep: Sequence[str], out: Path) -> None:
            if mixed_base == "static":
                quantize.quantize_static_int8(onnx_in, out, batches, calibration_method, per_channel, reduce_range,
                                              keep_fp32=keep)
            else:
                quantize.quantize_dynamic_int8(onnx_in, out, per_channel, reduce_range, keep_fp32=keep)

        with tempfile.TemporaryDirectory(prefix="mixed-int8-", dir=Path(onnx_out).parent) as scratch:
            found = quantize.search_fp32_matmuls(quantize.weight_matmuls(onnx_in), candidate, score, gate, metric,
                                                 scratch)
        if not found.passed:
            # Not a failure of the run: the best mix tried is timed, the accuracy stage judges it, and the summary
            # says in one line that no INT8 of this model passes.
            log.warning("%s: no mix of FP32 and INT8 MatMuls reaches %s %s on the calibration texts (all INT8: "
                        "%.6f; best tried, %d of %d MatMuls kept in FP32: %.6f); that mix is timed and judged",
                        Path(onnx_out).name, metric, gate, found.score_all_int8, len(found.kept_fp32),
                        found.matmuls, found.score)
        candidate(found.kept_fp32, Path(onnx_out))
        search_result.update(found.as_dict())
        log.info("mixed INT8: %d of %d MatMuls kept in FP32 (%s %.6f, gate %.6f): %s", len(found.kept_fp32),
                 found.matmuls, metric, found.score, gate, ", ".join(found.kept_fp32) or "none")

    _converted_stage(onnx_in, onnx_out, reference, tolerance, convert, stage="quantize_int8", what="INT8",
                     mixed_precision=search_result, **settings)


def _graph_inputs(onnx_path: str | Path) -> list[str]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [value.name for value in graph.input if value.name not in initializers]
