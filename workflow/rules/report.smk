# The report stage (inference_bench.report): summaries, charts, the README, the regression verdict.

from types import SimpleNamespace

from inference_bench.report.provenance import config_sources, settings_hash
from inference_bench.report.readme import summary_stale_note


def _artifact_sidecars(model):
    return expand(layout.ONNX_SIDECAR, model=model, artifact=built_artifacts())


def summary_settings_hash(wildcards):
    """The hash of the settings the summary depends on (inference_bench.report.provenance)."""
    return settings_hash(config, wildcards.model, wildcards.hardware)


def summary_config_sources(wildcards):
    """The config files and overrides of this run, recorded so that a later README can reload them. Wrapped in
    a SimpleNamespace, which Snakemake does not track as a parameter: running with another set of files
    that holds the same settings must not summarize again."""
    files = [os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
             for path in dict.fromkeys(["config/config.yaml", *workflow.configfiles])]
    return SimpleNamespace(**config_sources(files, workflow.config_settings.config))


def aggregate_inputs(wildcards):
    return {
        "results": _measured(wildcards.model),
        "failed": _failed(wildcards.model),
        "sidecars": _artifact_sidecars(wildcards.model),
        "accuracy": expected_accuracy(wildcards.model),
        "calibration": layout.CALIBRATION.format(hardware=wildcards.hardware),
    }



def summaries_of_this_run():
    return expand(layout.SUMMARY, hardware=HARDWARE, model=MODELS)


def summaries_of_other_tags():
    """Summaries of this run's models committed from other machines: charts compare them, never rebuilt."""
    return [p for p in committed_summaries() if layout.parse_summary_path(p).model in MODELS]


def committed_summaries():
    """Every summary on disk that this run does not produce: other tags, and models of other configs
    (an experiment's). The README lists them all."""
    produced = set(summaries_of_this_run())
    return [
        # local(): read from this checkout even when a storage plugin carries the run's own files.
        local(str(path))
        for path in sorted(Path(layout.RESULTS).glob(layout.SUMMARY.format(hardware="*", model="*")[len(layout.RESULTS):]))
        if layout.parse_summary_path(path).hardware != "models" and str(path) not in produced
    ]


def files_beside(summaries):
    """What the charts and the README read beside each summary: its artifact table and its environment
    (made by this run's aggregate jobs, or committed with another tag's or model's summary)."""
    produced = set(summaries_of_this_run())
    files = []
    for summary in map(str, summaries):
        for pattern in (layout.ARTIFACT_TABLE, layout.ENVIRONMENT):
            beside = str(layout.beside_summary(summary, pattern))
            if summary in produced:
                files.append(beside)
            elif Path(beside).exists():
                files.append(local(beside))
    return files


def readme_staleness(wildcards):
    return {str(path): summary_stale_note(path) for path in summaries_of_this_run() + committed_summaries()
            if Path(path).exists()}


def chart_files():
    return expand(layout.CHART, model=MODELS, chart=layout.CHARTS)


def chart_report_items():
    """The charts as items of `snakemake --report report.html`, one category per model, each with its caption
    (workflow/report/<chart>.rst)."""
    return [report(layout.CHART.format(model=model, chart=chart), caption=f"../report/{chart}.rst",
                   category=model, labels={"model": model, "chart": chart})
            for model in MODELS for chart in layout.CHARTS]


if REPORT_ONLY:
    _missing = [path for path in summaries_of_this_run() if not Path(path).exists()]
    if _missing:
        raise WorkflowError(
            f"no {_missing[0]} to draw the report from: run `snakemake --cores 1` to measure first"
        )


# Cheap rules, and the download (compute nodes may have no network), run where Snakemake runs.
localrules:
    download_model,
    aggregate,
    charts,
    readme,
    regression,
    variant_result,


# Not a rule of `snakemake readme`: there the summaries on disk are the sources (see REPORT_ONLY).
if not REPORT_ONLY:

    rule aggregate:
        input:
            unpack(aggregate_inputs),
        output:
            summary=report(layout.SUMMARY, caption="../report/summary.rst", category="Tables",
                           labels={"model": "{model}", "hardware": "{hardware}", "table": "summary"}),
            artifacts=layout.ARTIFACT_TABLE,
            markdown=layout.SUMMARY_MARKDOWN,
            environment=report(layout.ENVIRONMENT, caption="../report/environment.rst", category="Tables",
                               labels={"model": "{model}", "hardware": "{hardware}", "table": "environment"}),
        log:
            layout.log_path("{hardware}", "{model}", "aggregate"),
        params:
            settings_hash=summary_settings_hash,
            code_hash=REPORTING_CODE,
            config_sources=summary_config_sources,
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/aggregate.py"


rule charts:
    input:
        summaries=summaries_of_this_run() + summaries_of_other_tags(),
        beside=files_beside(summaries_of_this_run() + summaries_of_other_tags()),
    output:
        charts=chart_report_items(),
    log:
        layout.log_path("charts"),
    params:
        models=list(MODELS),
        code_hash=REPORTING_CODE,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/charts.py"


rule readme:
    input:
        summaries=summaries_of_this_run() + committed_summaries(),
        beside=files_beside(summaries_of_this_run() + committed_summaries()),
        charts=chart_files(),
    output:
        stamp=layout.README_STAMP,
    log:
        layout.log_path("readme"),
    params:
        readme="README.md",
        models=list(MODELS),
        targets=config["targets"],
        reference_hardware=config["reference_hardware"],
        code_hash=REPORTING_CODE,
        # Whether each table is stale, as known when the DAG is built: when that changes (a config edited,
        # the code changed), `snakemake readme` redraws the README even though no summary did.
        staleness=readme_staleness,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/readme.py"


# No output: run whenever it is named (`snakemake --cores 1 regression`), after whatever it needs is measured.
rule regression:
    input:
        summaries=summaries_of_this_run(),
        beside=files_beside(summaries_of_this_run()),
    log:
        layout.log_path("regression"),
    params:
        against=config["regression"]["against"],
        min_change=config["regression"]["min_change"],
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/regression.py"
