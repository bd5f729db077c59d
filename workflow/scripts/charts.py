from pathlib import Path

from _common import run_logged

from inference_bench.charts import draw_charts


def main() -> None:
    # Outputs are images/{model}/{chart}.png: one folder per model.
    folders = {Path(chart).parent.name: Path(chart).parent for chart in snakemake.output.charts}
    for model in snakemake.params.models:
        draw_charts(snakemake.input.summaries, model, folders[model])


run_logged(main, snakemake.log[0])
