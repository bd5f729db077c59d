from pathlib import Path

from _common import run_logged
from inference_bench.report.readme import update_readme
from inference_bench.report.recommend import Constraints
from inference_bench.report.targets import Target


def main() -> None:
    targets = [Target.from_config(entry) for entry in snakemake.params.targets]
    update_readme(snakemake.params.readme, snakemake.input.summaries, snakemake.params.models, targets,
                  reference_hardware=snakemake.params.reference_hardware,
                  constraints=Constraints.from_config(snakemake.params.recommend), prices=snakemake.params.prices)
    Path(snakemake.output.stamp).touch()


run_logged(main, snakemake.log[0])
