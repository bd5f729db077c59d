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
