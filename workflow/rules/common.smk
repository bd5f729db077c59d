import re
import sys
from pathlib import Path

# Rules and scripts import the pipeline's package the same way: workflow/scripts/_common.py puts this
# checkout's workflow/src first on sys.path (importing it does that).
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))
import _common  # noqa: F401,E402

from inference_bench import layout
from inference_bench.benchmark.timing import TIMING_CONFIG_KEYS
from inference_bench.config_validation import ConfigError, check_sequence_lengths, validate_config
from inference_bench.variants import ARTIFACTS, VARIANTS, artifact_names, variant_names


try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
    check_sequence_lengths(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None


MODELS = {model["name"]: model for model in config["models"]}


HARDWARE = config["hardware"]
HARDWARE_TAG = config["hardware_tags"][HARDWARE]
#: What a benchmark or calibration job needs to know of its tag (the variant list only shapes the DAG,
#: the resources only where a cluster runs it).
HARDWARE_TAG_SETTINGS = {k: v for k, v in HARDWARE_TAG.items() if k not in ("variants", "resources")}
#: What this tag's measuring jobs ask a cluster executor for (see workflow/profiles/).
HARDWARE_RESOURCES = HARDWARE_TAG["resources"]
BENCH = config["benchmark"]
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


def model_spec(wildcards):
    return MODELS[wildcards.model]


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


def onnxscript_fusions(wildcards):
    """Graphs from the dynamo exporter get onnxscript's ORT fusions before ONNX Runtime's own."""
    return setting("export", "exporter")(wildcards) == "dynamo"


def model_dir(wildcards):
    return layout.MODEL_DIR.format(model=wildcards.model)


def reference_path(wildcards):
    return layout.REFERENCE.format(model=wildcards.model)


def benchmark_inputs(wildcards):
    inputs = {"model_dir": model_dir(wildcards), "reference": reference_path(wildcards)}
    artifact = VARIANTS[wildcards.variant].artifact
    if artifact:
        inputs["onnx"] = artifact_path(wildcards.model, artifact)
    return inputs


def benchmark_timing():
    return {key: BENCH[key] for key in TIMING_CONFIG_KEYS}


def pytorch_attn_implementation(wildcards):
    """Only the PyTorch variants use it; the others get None, so changing it reruns PyTorch jobs only."""
    return BENCH["pytorch_attn_implementation"] if VARIANTS[wildcards.variant].engine == "torch" else None


def benchmark_config_for_hash(wildcards):
    """The settings a benchmark result depends on, recorded as its config hash."""
    return {
        "model": MODELS[wildcards.model],
        "benchmark": {**benchmark_timing(), **{key: BENCH[key] for key in ("threads", "seed", "memory_limit_mb")}},
        "pytorch_attn_implementation": pytorch_attn_implementation(wildcards),
        "hardware_tag": HARDWARE_TAG_SETTINGS,
    }


def variant_tolerance(wildcards):
    """The parity gate of the variant's precision, checked again on the execution provider being timed."""
    return parity_tolerance(VARIANTS[wildcards.variant].tolerance_key)


def expected_benchmarks(wildcards):
    return expand(
        layout.BENCH_RESULT,
        hardware=wildcards.hardware,
        model=wildcards.model,
        variant=HARDWARE_TAG["variants"],
        batch=BENCH["batch_sizes"],
        seq=BENCH["sequence_lengths"],
    )


def benchmark_results(wildcards):
    """Every expected result, but for jobs that failed last time (their marker stands, their result does
    not): those are summarized as failed rows instead of being run again. Delete a marker to retry."""
    return [
        path
        for path in expected_benchmarks(wildcards)
        if Path(path).exists() or not layout.failure_marker_path(path).exists()
    ]


def failed_benchmarks(wildcards):
    return [
        str(layout.failure_marker_path(path))
        for path in expected_benchmarks(wildcards)
        if not Path(path).exists() and layout.failure_marker_path(path).exists()
    ]


def artifact_sidecars(wildcards):
    """Every ONNX artifact is built on every tag, so the size table shows the ones this tag does not time."""
    return expand(layout.ONNX_SIDECAR, model=wildcards.model, artifact=artifact_names())


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


def chart_files():
    return expand(layout.CHART, model=MODELS, chart=layout.CHARTS)
