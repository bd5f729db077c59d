from _common import run_logged
from inference_bench.accuracy.task import text_reference_stage


def main() -> None:
    text_reference_stage(snakemake.input.model_dir, snakemake.output.reference, max_length=snakemake.params.max_length,
                         dataset=snakemake.input.get("dataset"))


run_logged(main, snakemake.log[0])
