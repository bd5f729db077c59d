from _common import run_logged
from inference_bench.build.stages import reference_stage


def main() -> None:
    reference_stage(snakemake.input.model_dir, snakemake.output.reference, seed=snakemake.params.seed)


run_logged(main, snakemake.log[0])
