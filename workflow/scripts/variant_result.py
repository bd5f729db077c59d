import logging

from _common import run_logged
from inference_bench.measure.rounds import write_variant_result
from inference_bench.terminal import LOG_ONLY

log = logging.getLogger("inference_bench.variant_result")


def main() -> None:
    write_variant_result(snakemake.input.comparison, snakemake.output.result, snakemake.wildcards.variant,
                         snakemake.params.on_failure)
    log.info("%s written from %s", snakemake.output.result, snakemake.input.comparison, extra=LOG_ONLY)


run_logged(main, snakemake.log[0])
