# What all the stages need: the config, loaded and checked before any job; the tag this run measures; the
# wildcards; the per-model settings and the model's own files. Each stage's input functions stand beside its
# rule file, in <stage>_inputs.smk (build, accuracy, measure, report); the run's targets in targets.smk.
import os
import re
import shutil
import sys
from pathlib import Path

from inference_bench import layout, terminal
from snakemake.utils import update_config

from inference_bench.config_validation import (
    check_labelled_dataset,
    check_model_sources,
    check_sequence_lengths,
    typed_overrides,
    validate_config,
)
from inference_bench.environment import measuring_code_hash, reporting_code_hash
from inference_bench.errors import PipelineError, PlanningRefused
from inference_bench.hardware import check_tag_for_executor, plan_hardware
from inference_bench.inputs.corpus import CORPUS_PATH, has_tokenizer
from inference_bench.models import ModelSpec, local_source_files
from inference_bench.variants import ARTIFACTS, VARIANTS, artifact_names

# One line per job that does work on the terminal; Snakemake's full job headers with --verbose, and in a dry
# run (the plan is what a dry run is for).
# (Snakemake knows it is a dry run only once its executor is chosen, after the Snakefile is read: asked per line.)
terminal.install(verbose=bool(getattr(workflow.output_settings, "verbose", False)),
                 dry_run=lambda: workflow.dryrun)


# A braced --config value reaches here with every scalar a string (Snakemake reads it with YAML's BaseLoader).
update_config(config, {key: typed_overrides(value) for key, value in workflow.config_settings.config.items()
                       if isinstance(value, (dict, list))})
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


# `hardware: auto` (the default): this machine, under a tag named after it, with the `cpu` tag's variants
# that can run here; the others are left out, with one line saying which and why (inference_bench.hardware).
try:
    PLANNED_HARDWARE = plan_hardware(config)
except PipelineError as error:
    raise WorkflowError(str(error)) from None
if PLANNED_HARDWARE.left_out_line() and workflow.is_main_process:
    logger.info(PLANNED_HARDWARE.left_out_line())
HARDWARE = PLANNED_HARDWARE.name
HARDWARE_TAG = PLANNED_HARDWARE.settings
#: What a benchmark or calibration job needs to know of its tag (the variant list only shapes the DAG,
#: the resources only where a cluster runs it).
HARDWARE_TAG_SETTINGS = {k: v for k, v in HARDWARE_TAG.items()
                         if k not in ("variants", "resources", "price_per_hour")}
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


def refuse(error):
    """End the run on a user-fixable error found while the DAG is built: its one line on the terminal, no
    traceback (Snakemake prints one for any exception raised in an input function)."""
    logger.error(f"Error: {error}")
    raise PlanningRefused(str(error))


def tag_named_for_cluster(wildcards):
    """An input function of the run's targets that adds no file: the executor is known only once the DAG is
    built, and a cluster executor needs a named tag (`hardware: auto` would name it after each node)."""
    if workflow.is_main_process:
        try:
            check_tag_for_executor(PLANNED_HARDWARE, local_exec=workflow.local_exec)
        except PipelineError as error:
            refuse(error)
    return []


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


def setting(section, key):
    """A stage setting for the job's model: the model's own `settings` override, else the config section."""

    def for_model(wildcards):
        override = MODELS[wildcards.model].get("settings", {}).get(section, {})
        return override.get(key, config[section][key])

    return for_model


def parity_tolerance(precision):
    return config["parity"][precision]


def artifact_path(model, artifact):
    return layout.ONNX_ARTIFACT.format(model=model, artifact=artifact)


def model_dir(wildcards):
    return layout.MODEL_DIR.format(model=wildcards.model)


def reference_path(wildcards):
    return layout.REFERENCE.format(model=wildcards.model)


def reads_text(model):
    """Whether the model has a tokenizer, so that parity and accuracy read the corpus: a random model has none;
    a local one has one when its directory holds tokenizer files; a Hub checkpoint is assumed to."""
    spec = ModelSpec.from_config(MODELS[model])
    if spec.source == "random":
        return False
    if spec.source == "local":
        return has_tokenizer(spec.path)
    return True


#: The accuracy-aware INT8 recipe, added for models with a tokenizer (int8.mixed_for_text_models): where a
#: dynamic INT8 misses the accuracy gate on real text, it is the INT8 that passes, if one does.
MIXED_INT8 = "onnx-int8-mixed"


def variants_of(model):
    """The variants timed for `model`: the tag's, and on a CPU the accuracy-aware INT8 for a model that reads
    text (its search needs the corpus; a random model has no tokenizer and nothing to steer it)."""
    variants = list(HARDWARE_TAG["variants"])
    if (config["int8"]["mixed_for_text_models"] and HARDWARE_TAG["device"] in VARIANTS[MIXED_INT8].devices
            and MIXED_INT8 not in variants and reads_text(model)):
        variants.append(MIXED_INT8)
    return variants


def corpus_if_read(wildcards):
    """The corpus, an input of what reads it (a model with a tokenizer): edit it and they run again."""
    return [os.path.relpath(CORPUS_PATH)] if reads_text(wildcards.model) else []


#: Targets that only redraw the charts and the README from the summaries on disk.
REPORT_TARGETS = {"readme", "charts", "recommend"}


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
