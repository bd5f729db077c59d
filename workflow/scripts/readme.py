from pathlib import Path

from _common import run_logged

from inference_bench.readme import update_readme


def main() -> None:
    update_readme(snakemake.params.readme, snakemake.input.summaries, snakemake.params.models)
    Path(snakemake.output.stamp).touch()


run_logged(main, snakemake.log[0])
