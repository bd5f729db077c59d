from _common import run_logged
from inference_bench.build.stages import optimize_stage


def main() -> None:
    params = snakemake.params
    optimize_stage(
        snakemake.input.onnx,
        snakemake.output.onnx,
        model_dir=snakemake.input.model_dir,
        reference=snakemake.input.reference,
        opt_level=params.opt_level,
        require_full_fusion=params.require_full_fusion,
        tolerance=params.tolerance,
        onnxscript_fusions=params.onnxscript_fusions,
    )


run_logged(main, snakemake.log[0])
