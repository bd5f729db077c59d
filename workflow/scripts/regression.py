import logging

from _common import run_logged
from inference_bench.report.regression import check_regressions


def main() -> None:
    report = check_regressions(snakemake.input.summaries, ref=snakemake.params.against,
                               min_change=snakemake.params.min_change, decide_on=snakemake.params.decide_on,
                               min_speedup_change=snakemake.params.min_speedup_change)
    logging.getLogger("workflow").info("no regression beyond noise:\n\n%s", report)


run_logged(main, snakemake.log[0])
