from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/benchmark.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        layout.README_STAMP,


rule summaries:
    """Benchmarks and summaries only, no charts or README: the target for config/experiments/, whose
    summaries the default run's README then lists."""
    input:
        summaries_of_this_run(),
