from _common import run_logged
from inference_bench.build.stages import int8_stage


def main() -> None:
    params = snakemake.params
    int8_stage(
        snakemake.input.onnx,
        snakemake.output.onnx,
        reference=snakemake.input.reference,
        per_channel=params.per_channel,
        reduce_range=params.reduce_range,
        tolerance=params.tolerance,
        model_dir=snakemake.input.get("model_dir"),
        **params.recipe,
    )


run_logged(main, snakemake.log[0])
