from pathlib import Path

from _common import run_logged
from inference_bench import layout
from inference_bench.report.charts import draw_charts


def main() -> None:
    for model in snakemake.params.models:
        folder = Path(layout.CHART.format(model=model, chart="any")).parent
        draw_charts(snakemake.input.summaries, model, folder)


run_logged(main, snakemake.log[0])
