from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/config_files.smk"


configfile: "config/config.yaml"


# `snakemake --report report.html` after a run: every chart and summary with its caption, on one page.
report: "workflow/report/workflow.rst"


# One rule file per stage, each beside its subpackage of inference_bench (workflow/src/inference_bench/).
include: "workflow/rules/common.smk"
include: "workflow/rules/build.smk"
include: "workflow/rules/accuracy.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/targets.smk"


rule all:
    """The whole pipeline: every file the README reports on is a target, so a missing (or damaged, see
    inference_bench.integrity) model, artifact, sidecar, reference or result is rebuilt."""
    input:
        layout.README_STAMP,
        reported_files(),
        tag_named_for_cluster,


rule summaries:
    """Benchmarks and summaries only, no charts or README: the target for config/experiments/, whose
    summaries the default run's README then lists."""
    input:
        summaries_of_this_run(),
        tag_named_for_cluster,
