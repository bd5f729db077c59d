import logging

import pandas as pd

from _common import run_logged
from inference_bench import layout
from inference_bench.report.recommend import Constraints, largest_batch, recommend, recommendation_lines
from inference_bench.report.tables import format_number

log = logging.getLogger("inference_bench.recommend")


def main() -> None:
    """Every summary on disk, this run's models first: what to deploy per shape, and with a latency objective
    the largest batch that meets it."""
    constraints = Constraints.from_config(snakemake.params.recommend)
    models = snakemake.params.models
    summaries = sorted(snakemake.input.summaries, key=lambda path: (
        layout.parse_summary_path(path).model not in models, str(path)))
    for path in summaries:
        key = layout.parse_summary_path(path)
        recommendations = recommend(pd.read_csv(path), constraints, snakemake.params.prices)
        log.info("What to deploy, %s on %s:", key.model, key.hardware)
        for line in recommendation_lines(recommendations):
            log.info("  %s", line.replace("**", ""))
        if constraints.max_p99_ms:
            for row in largest_batch(recommendations, constraints).itertuples():
                log.info("  largest batch within p99 %s ms at sequence %d: %d (%s, %s sequences/s)",
                         format_number(constraints.max_p99_ms), row.sequence_length, row.batch_size, row.choice,
                         format_number(row.throughput_seq_per_s))


run_logged(main, snakemake.log[0])
