# The report stage (inference_bench.report): summaries, charts, the README, the regression verdict.


include: "report_inputs.smk"


# Cheap rules, and the download (compute nodes may have no network), run where Snakemake runs.
localrules:
    download_model,
    aggregate,
    shape_summary,
    charts,
    readme,
    recommend,
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
            # What to deploy per shape (the README's block says the same), for the HTML report.
            recommendation=report(layout.RECOMMENDATION, caption="../report/recommendation.rst", category="Tables",
                                  labels={"model": "{model}", "hardware": "{hardware}", "table": "what to deploy"}),
            # The variance of every comparison level by level (the README's "How it measures" table).
            variance=layout.VARIANCE,
        log:
            layout.log_path("{hardware}", "{model}", "aggregate"),
        params:
            settings_hash=summary_settings_hash,
            code_hash=REPORTING_CODE,
            config_sources=summary_config_sources,
            recommend=config["recommend"],
            price=HARDWARE_TAG.get("price_per_hour"),
        conda:
            "../../envs/report.yaml"
        script:
            "../scripts/aggregate.py"


# One shape's summary beside the model's (the Python toolkit's run_full_analysis times the shape of its text):
# the model's summary, and so the README, keep every configured shape.
rule shape_summary:
    input:
        unpack(aggregate_inputs),
    output:
        summary=layout.SHAPE_SUMMARY,
        artifacts=layout.SHAPE_SUMMARY_ARTIFACTS,
        markdown=layout.SHAPE_SUMMARY_MARKDOWN,
        environment=layout.SHAPE_SUMMARY_ENVIRONMENT,
    log:
        layout.log_path("{hardware}", "{model}", "shape_summary_b{batch}_s{seq}"),
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
        recommend=config["recommend"],
        prices=machine_prices(),
        code_hash=REPORTING_CODE,
        # Whether each table is stale, as known when the DAG is built: when that changes (a config edited,
        # the code changed), `snakemake readme` redraws the README even though no summary did.
        staleness=readme_staleness,
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/readme.py"


# No output: `snakemake --cores 1 recommend` prints what to deploy from the summaries on disk (no measuring:
# a report target, see REPORT_ONLY), under the config's `recommend` objective.
rule recommend:
    input:
        summaries=summaries_of_this_run() + committed_summaries(),
    log:
        layout.log_path("recommend"),
    params:
        recommend=config["recommend"],
        prices=machine_prices(),
        models=list(MODELS),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/recommend.py"


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
        decide_on=config["regression"]["decide_on"],
        min_speedup_change=config["regression"]["min_speedup_change"],
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/regression.py"
