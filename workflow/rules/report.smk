# Cheap rules, and the download (compute nodes may have no network), run where Snakemake runs.
localrules:
    download_model,
    aggregate,
    charts,
    readme,


rule aggregate:
    input:
        results=benchmark_results,
        failed=failed_benchmarks,
        sidecars=artifact_sidecars,
        calibration="results/{hardware}/calibration.json",
    output:
        summary="results/{hardware}/{model}/summary.csv",
        artifacts="results/{hardware}/{model}/artifacts.csv",
        markdown="results/{hardware}/{model}/summary.md",
        environment="results/{hardware}/{model}/environment.json",
    log:
        "logs/{hardware}/{model}/aggregate.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/aggregate.py"


rule charts:
    input:
        summaries=summaries_of_this_run() + summaries_of_other_tags(),
    output:
        charts=chart_files(),
    log:
        "logs/charts.log",
    params:
        models=list(MODELS),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/charts.py"


rule readme:
    input:
        summaries=summaries_of_this_run() + committed_summaries(),
        charts=chart_files(),
    output:
        # Snakemake deletes a job's outputs before it runs, so README.md itself cannot be one.
        stamp="results/readme.stamp",
    log:
        "logs/readme.log",
    params:
        readme="README.md",
        models=list(MODELS),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/readme.py"

