from _common import run_logged
from inference_bench.build.stages import export_stage


def main() -> None:
    params = snakemake.params
    export_stage(
        snakemake.input.model_dir,
        snakemake.output.onnx,
        snakemake.input.reference,
        opset=params.opset,
        attn_implementation=params.attn_implementation,
        tolerance=params.tolerance,
        exporter=params.exporter,
    )


run_logged(main, snakemake.log[0])
