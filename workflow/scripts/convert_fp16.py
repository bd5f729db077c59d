from _common import run_logged
from inference_bench.build.stages import fp16_stage


def main() -> None:
    params = snakemake.params
    fp16_stage(
        snakemake.input.onnx,
        snakemake.output.onnx,
        reference=snakemake.input.reference,
        keep_io_types=params.keep_io_types,
        op_block_list=params.op_block_list,
        tolerance=params.tolerance,
    )


run_logged(main, snakemake.log[0])
