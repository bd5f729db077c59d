import os
import re
import shutil
import sys
from types import SimpleNamespace
from pathlib import Path

from inference_bench import integrity, layout, terminal
from inference_bench.benchmark.timing import TIMING_CONFIG_KEYS
from inference_bench.config_validation import (
    check_labelled_dataset,
    check_model_sources,
    check_sequence_lengths,
    validate_config,
)
from inference_bench.environment import measuring_code_hash, reporting_code_hash
from inference_bench.errors import PipelineError
from inference_bench.hardware import HardwareTag, check_hardware, check_machine
from inference_bench.accuracy import CORPUS_PATH, has_tokenizer
from inference_bench.models import ModelSpec, local_source_files
from inference_bench.provenance import config_sources, settings_hash
from inference_bench.readme import summary_stale_note
from inference_bench.variants import ARTIFACTS, VARIANTS, artifact_names

# One line per job that does work on the terminal; Snakemake's full job headers with --verbose, and in a dry
# run (the plan is what a dry run is for).
# (Snakemake knows it is a dry run only once its executor is chosen, after the Snakefile is read: asked per line.)
terminal.install(verbose=bool(getattr(workflow.output_settings, "verbose", False)),
                 dry_run=lambda: workflow.dryrun)


try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
    check_sequence_lengths(config)
    check_model_sources(config)
    check_labelled_dataset(config)
except PipelineError as error:
    raise WorkflowError(str(error)) from None


if workflow.deployment_settings and "conda" in {str(m).lower() for m in workflow.deployment_settings.deployment_method}:
    if not any(shutil.which(tool) for tool in ("conda", "mamba", "micromamba")):
        raise WorkflowError(
            "--use-conda (--sdm conda) needs conda, and no conda, mamba or micromamba is on PATH here. Drop the "
            "flag (pip install -e '.[cpu]' already installed everything the rules need) or install conda."
        )


MODELS = {model["name"]: model for model in config["models"]}


HARDWARE = config["hardware"]
HARDWARE_TAG = config["hardware_tags"][HARDWARE]
#: What a benchmark or calibration job needs to know of its tag (the variant list only shapes the DAG,
#: the resources only where a cluster runs it).
HARDWARE_TAG_SETTINGS = {k: v for k, v in HARDWARE_TAG.items() if k not in ("variants", "resources")}
#: What this tag's measuring jobs ask a cluster executor for (see workflow/profiles/).
HARDWARE_RESOURCES = HARDWARE_TAG["resources"]
BENCH = config["benchmark"]
#: A parameter of every measuring job: when the code that produces a number changes, the number is measured
#: again (Snakemake itself tracks only the rule's own script).
MEASURING_CODE = measuring_code_hash()
#: A parameter of the summary, chart and README rules: a change to how results are drawn redraws them.
REPORTING_CODE = reporting_code_hash()
ENV_FOR_DEVICE = {"cpu": "../../envs/pipeline-cpu.yaml", "cuda": "../../envs/pipeline-gpu.yaml"}
BENCH_ENV = ENV_FOR_DEVICE[HARDWARE_TAG["device"]]


def one_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    model=one_of(MODELS),
    # Only the tag this run measures has rules: another tag's committed results are read, never remade.
    hardware=re.escape(HARDWARE),
    variant=one_of(VARIANTS),
    batch=r"[1-9]\d*",
    seq=r"[1-9]\d*",


#: Keys of a model entry that its source does not read.
_UNUSED_BY_SOURCE = {"random": ("hub_id", "revision", "path"), "local": ("hub_id", "revision", "model_type", "seed",
                     "config_overrides"), "hub": ("path", "model_type", "seed", "config_overrides")}


def model_spec(wildcards):
    """The model's entry, less what cannot change its files (a head's size, unless it is a random classifier):
    the download's params, so that a change to a key that matters, and only that, makes the model again."""
    entry = dict(MODELS[wildcards.model])
    if entry.get("task") != "sequence-classification" or entry.get("source") != "random":
        entry.pop("num_labels", None)
    for key in _UNUSED_BY_SOURCE[entry.get("source", "random")]:
        entry.pop(key, None)  # a random model's hub_id, say: the Python toolkit's entry has none
    if entry.get("task") == "feature-extraction":
        entry.pop("task")  # the default, as entries written before `task` existed mean it
    return entry


def model_source_files(wildcards):
    """A local model's source files are the download's inputs: when one changes, it is copied again."""
    spec = ModelSpec.from_config(MODELS[wildcards.model])
    return [str(path) for path in local_source_files(spec)] if spec.source == "local" else []


def setting(section, key):
    """A stage setting for the job's model: the model's own `settings` override, else the config section."""

    def for_model(wildcards):
        override = MODELS[wildcards.model].get("settings", {}).get(section, {})
        return override.get(key, config[section][key])

    return for_model


def parity_tolerance(precision):
    return config["parity"][precision]


#: The artifact torch.onnx.export writes; every other one is made from it.
(EXPORTED_ARTIFACT,) = artifact_names("export")


def artifact_path(model, artifact):
    return layout.ONNX_ARTIFACT.format(model=model, artifact=artifact)


def source_artifact(wildcards):
    """The ONNX file an artifact is made from (the registry's `source`)."""
    return artifact_path(wildcards.model, ARTIFACTS[wildcards.artifact].source)


def artifact_tolerance(wildcards):
    return parity_tolerance(ARTIFACTS[wildcards.artifact].precision)


def _calibrated(wildcards):
    """Static and mixed INT8 read a calibration set made from the model (and the corpus, where it reads text)."""
    return ARTIFACTS[wildcards.artifact].recipe in ("static", "mixed")


def int8_inputs(wildcards):
    if not _calibrated(wildcards):
        return {}
    return {"model_dir": model_dir(wildcards), "corpus": corpus_if_read(wildcards)}


def int8_recipe_settings(wildcards):
    """What a recipe's file depends on beyond the int8 section: its calibration set (static, mixed), the
    calibration method (static) and the accuracy gate it searches against (mixed). Only those: a dynamic
    recipe does not run again when the calibration method changes."""
    recipe = ARTIFACTS[wildcards.artifact].recipe
    settings = {"recipe": recipe}
    if _calibrated(wildcards):
        settings.update(max_length=config["accuracy"]["max_length"], seed=config["parity"]["seed"])
    if recipe == "static":
        settings["calibration_method"] = setting("int8", "calibration_method")(wildcards)
    if recipe == "mixed":
        settings["min_relative"] = config["accuracy"]["min_relative"]
        settings["mixed_base"] = setting("int8", "mixed_base")(wildcards)
        settings["mixed_margin"] = setting("int8", "mixed_margin")(wildcards)
        if settings["mixed_base"] == "static":
            settings["calibration_method"] = setting("int8", "calibration_method")(wildcards)
    return settings


def onnxscript_fusions(wildcards):
    """Graphs from the dynamo exporter get onnxscript's ORT fusions before ONNX Runtime's own."""
    return setting("export", "exporter")(wildcards) == "dynamo"


def model_dir(wildcards):
    return layout.MODEL_DIR.format(model=wildcards.model)


def reference_path(wildcards):
    return layout.REFERENCE.format(model=wildcards.model)


def comparison_inputs(wildcards):
    """The model, its reference outputs and the ONNX file of every variant of the tag that runs one."""
    machine_checked(wildcards)
    artifacts = sorted({VARIANTS[name].artifact for name in HARDWARE_TAG["variants"] if VARIANTS[name].artifact})
    return {"model_dir": model_dir(wildcards), "reference": reference_path(wildcards),
            "onnx": [artifact_path(wildcards.model, artifact) for artifact in artifacts]}


def accuracy_inputs(wildcards):
    machine_checked(wildcards)
    inputs = {"model_dir": model_dir(wildcards), "text_reference": layout.TEXT_REFERENCE.format(model=wildcards.model)}
    if VARIANTS[wildcards.variant].artifact:
        inputs["onnx"] = artifact_path(wildcards.model, VARIANTS[wildcards.variant].artifact)
    return inputs


def reads_text(model):
    """Whether the model has a tokenizer, so that parity and accuracy read the corpus: a random model has none;
    a local one has one when its directory holds tokenizer files; a Hub checkpoint is assumed to."""
    spec = ModelSpec.from_config(MODELS[model])
    if spec.source == "random":
        return False
    if spec.source == "local":
        return has_tokenizer(spec.path)
    return True


def corpus_if_read(wildcards):
    """The corpus, an input of what reads it (a model with a tokenizer): edit it and they run again."""
    return [os.path.relpath(CORPUS_PATH)] if reads_text(wildcards.model) else []


def labelled_dataset(wildcards):
    """The labelled file (accuracy.dataset), an input of a classification model's text reference."""
    dataset = config["accuracy"].get("dataset")
    if not dataset or MODELS[wildcards.model].get("task") != "sequence-classification":
        return {}
    return {"dataset": dataset}


def expected_accuracy(model):
    if not reads_text(model):
        return []
    return expand(layout.ACCURACY, hardware=HARDWARE, model=model, variant=HARDWARE_TAG["variants"])


def comparison_variants(wildcards):
    """Each variant of the tag, in its configured order, with the ONNX file it runs and its parity gate."""
    return [
        {
            "variant": name,
            "onnx_path": artifact_path(wildcards.model, VARIANTS[name].artifact) if VARIANTS[name].artifact else None,
            "tolerance": parity_tolerance(VARIANTS[name].tolerance_key),
        }
        for name in HARDWARE_TAG["variants"]
    ]


_MACHINES_CHECKED = set()


def machine_checked(wildcards):
    """An input function of the measuring rules that adds no file: while the DAG is built, before any job
    runs (and so before Snakemake deletes a result it would remake), this machine is compared with the one
    the tag's committed results came from (results/<tag>/machine.json), after checking that the tag's device
    is here at all. Only in a real run whose jobs run on this machine: a dry run may plan for a cluster from a
    login node, and on a cluster each measuring job makes the same checks on its node."""
    if workflow.local_exec and not workflow.dryrun and wildcards.hardware not in _MACHINES_CHECKED:
        try:
            check_hardware(HardwareTag(name=wildcards.hardware, **HARDWARE_TAG_SETTINGS))
            check_machine(wildcards.hardware, HARDWARE_TAG["device"], layout.MACHINE.format(hardware=wildcards.hardware),
                          replace=config["replace_machine"])
        except PipelineError as error:
            raise WorkflowError(str(error)) from None
        _MACHINES_CHECKED.add(wildcards.hardware)
    return []


def benchmark_timing():
    return {key: BENCH[key] for key in TIMING_CONFIG_KEYS}


def benchmark_config_for_hash(wildcards):
    """The settings a benchmark result depends on, recorded as its config hash."""
    keys = ("rounds", "threads", "seed", "memory_limit_mb", "max_other_cpu_share", "pytorch_attn_implementation",
            "inputs", "text_padding")
    return {
        "model": MODELS[wildcards.model],
        "benchmark": {**benchmark_timing(), **{key: BENCH[key] for key in keys}},
        "variants": comparison_variants(wildcards),
        "hardware_tag": HARDWARE_TAG_SETTINGS,
    }


#: Targets that only redraw the charts and the README from the summaries on disk.
REPORT_TARGETS = {"readme", "charts"}


def requested_targets():
    """The targets named on the snakemake command line; empty for the default target, or when the workflow
    is driven from Python (which then runs the whole pipeline). Read at parse time, when Snakemake's own
    settings do not hold them yet; Snakemake's parser only runs when a report target is named at all."""
    if "snakemake" not in sys.argv[0] or not REPORT_TARGETS & set(sys.argv[1:]):
        return set()
    from snakemake.cli import get_argument_parser

    try:
        arguments, _ = get_argument_parser().parse_known_args(sys.argv[1:])
    except SystemExit:
        return set()
    return set(arguments.targets or [])


#: `snakemake readme` (or `charts`): the summaries on disk are taken as they are (committed ones included,
#: on a fresh clone), and no rule makes them, so nothing upstream is rebuilt, measured or overwritten.
REPORT_ONLY = bool(requested_targets()) and requested_targets() <= REPORT_TARGETS


def expected_benchmarks(model):
    return expand(
        layout.BENCH_RESULT,
        hardware=HARDWARE,
        model=model,
        variant=HARDWARE_TAG["variants"],
        batch=BENCH["batch_sizes"],
        seq=BENCH["sequence_lengths"],
    )


def expected_comparisons(model):
    return expand(layout.COMPARISON, hardware=HARDWARE, model=model, batch=BENCH["batch_sizes"],
                  seq=BENCH["sequence_lengths"])


def _measured(model):
    """Every expected result, but for jobs that failed last time (their marker stands, their result does
    not): those are summarized as failed rows instead of being run again. Delete a marker to retry."""
    return [
        path
        for path in expected_benchmarks(model)
        if Path(path).exists() or not layout.failure_marker_path(path).exists()
    ]


def _failed(model):
    return [
        str(layout.failure_marker_path(path))
        for path in expected_benchmarks(model)
        if not Path(path).exists() and layout.failure_marker_path(path).exists()
    ]


def built_artifacts():
    """Every ONNX artifact is built on every tag, so the size table shows the ones this tag does not time;
    except the calibrated INT8 recipes (static, mixed), built only where they are timed: they calibrate on
    text and search, and static INT8 may fail its gate on a real model."""
    timed = {VARIANTS[name].artifact for name in HARDWARE_TAG["variants"]}
    return [a.name for a in ARTIFACTS.values() if a.recipe not in ("static", "mixed") or a.name in timed]


def _artifact_sidecars(model):
    return expand(layout.ONNX_SIDECAR, model=model, artifact=built_artifacts())


def summary_settings_hash(wildcards):
    """The hash of the settings the summary depends on (inference_bench.provenance)."""
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


def reported_files():
    """Every file the summaries, the charts and the README report on, for this run's tag and models."""
    files = [layout.CALIBRATION.format(hardware=HARDWARE), *chart_files()]
    for model in MODELS:
        files += [layout.MODEL_DIR.format(model=model), layout.REFERENCE.format(model=model)]
        files += expand(layout.ONNX_ARTIFACT, model=model, artifact=built_artifacts()) + _artifact_sidecars(model)
        files += expected_comparisons(model) + _measured(model) + expected_accuracy(model)
        files += [layout.TEXT_REFERENCE.format(model=model)] if reads_text(model) else []
    return files


def set_damaged_files_aside():
    """Move aside what no longer holds what was written, so this run rebuilds it (inference_bench.integrity).
    Only the main process checks: jobs Snakemake spawns (on a cluster, say) must not touch their neighbours."""
    checks = [(integrity.damaged_json, layout.CALIBRATION.format(hardware=HARDWARE))]
    for model in MODELS:
        checks.append((integrity.damaged_model_dir, layout.MODEL_DIR.format(model=model)))
        checks.append((integrity.damaged_npz, layout.REFERENCE.format(model=model)))
        checks += [(integrity.damaged_artifact, path) for path in expand(layout.ONNX_ARTIFACT, model=model,
                                                                         artifact=artifact_names())]
        checks += [(integrity.damaged_json, path) for path in expected_benchmarks(model)]
        checks += [(integrity.damaged_json, path) for path in expected_comparisons(model)]
        checks += [(integrity.damaged_json, layout.failure_marker_path(path)) for path in expected_benchmarks(model)]
        checks += [(integrity.damaged_json, layout.ENVIRONMENT.format(hardware=HARDWARE, model=model))]
    for damage in integrity.find_damage(checks):
        integrity.set_aside(damage)


if workflow.is_main_process and not REPORT_ONLY:
    set_damaged_files_aside()



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
