from _common import run_logged

from inference_bench.charts import draw_charts


def main() -> None:
    for model in snakemake.params.models:
        draw_charts(snakemake.input.summaries, model, f"{snakemake.params.images_dir}/{model}")


run_logged(main, snakemake.log[0])
