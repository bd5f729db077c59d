from _common import run_logged
from inference_bench.models import ModelSpec, prepare_model_dir


def main() -> None:
    spec = ModelSpec.from_config(dict(snakemake.params.spec))
    prepare_model_dir(spec, snakemake.output.model_dir)


run_logged(main, snakemake.log[0])
