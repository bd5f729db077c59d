# Cheap rules, and the download (compute nodes may have no network), run where Snakemake runs.
localrules:
    download_model,
    aggregate,
    charts,
    readme,


# Not a rule of `snakemake readme`: there the summaries on disk are the sources (see REPORT_ONLY).
if not REPORT_ONLY:

    rule aggregate:
        input:
            unpack(aggregate_inputs),
        output:
            summary=layout.SUMMARY,
            artifacts=layout.ARTIFACT_TABLE,
            markdown=layout.SUMMARY_MARKDOWN,
            environment=layout.ENVIRONMENT,
        log:
            layout.log_path("{hardware}", "{model}", "aggregate"),
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/aggregate.py"


rule charts:
    input:
        summaries=summaries_of_this_run() + summaries_of_other_tags(),
        beside=files_beside(summaries_of_this_run() + summaries_of_other_tags()),
    output:
        charts=chart_files(),
    log:
        layout.log_path("charts"),
    params:
        models=list(MODELS),
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
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/readme.py"
