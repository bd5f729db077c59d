# The input functions and parameters of report.smk, which includes this file (Snakemake's linter keeps
# functions and rules in separate files).
from types import SimpleNamespace

from inference_bench.report.provenance import config_sources, settings_hash
from inference_bench.hardware import tag_settings
from inference_bench.report.readme import summary_stale_note


def _artifact_sidecars(model):
    return expand(layout.ONNX_SIDECAR, model=model, artifact=built_artifacts(model))


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
    """The model's results at every configured shape; one shape's alone for a shape summary."""
    shape = ([int(wildcards.batch)], [int(wildcards.seq)]) if hasattr(wildcards, "batch") else ()
    return {
        "results": _measured(wildcards.model, *shape),
        "failed": _failed(wildcards.model, *shape),
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
        for pattern in (layout.ARTIFACT_TABLE, layout.ENVIRONMENT, layout.VARIANCE):
            beside = str(layout.beside_summary(summary, pattern))
            if summary in produced:
                files.append(beside)
            elif Path(beside).exists():
                files.append(local(beside))
    return files


def readme_staleness(wildcards):
    return {str(path): summary_stale_note(path) for path in summaries_of_this_run() + committed_summaries()
            if Path(path).exists()}


def machine_prices(wildcards=None):
    """Each machine with results and its price per hour (hardware_tags.<tag>.price_per_hour; a machine's own
    tag takes the cpu tag's), for the cost per million sequences."""
    tags = {layout.parse_summary_path(path).hardware for path in summaries_of_this_run() + committed_summaries()}
    return {tag: (tag_settings(config, tag) or {}).get("price_per_hour") for tag in sorted(tags)}


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
