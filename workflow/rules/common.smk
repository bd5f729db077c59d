import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "src"))

from inference_bench import CHARTS, ONNX_VARIANTS, TORCH_VARIANTS, VARIANTS
from inference_bench.benchmark.run import failure_marker_path
from inference_bench.calibration import VARIANT_PRECISION
from inference_bench.config_validation import ConfigError, check_sequence_lengths, validate_config


try:
    validate_config(config, Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml")
    check_sequence_lengths(config, Path("results/models"))
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
#: The FP16 and INT8 artifacts are built on every tag, so the size chart shows them even where they are
#: not timed (FP16 on CPU is FP32 plus casts).
ALL_ONNX_VARIANTS = list(ONNX_VARIANTS)
ENV_FOR_DEVICE = {"cpu": "../../envs/pipeline-cpu.yaml", "cuda": "../../envs/pipeline-gpu.yaml"}
BENCH_ENV = ENV_FOR_DEVICE[HARDWARE_TAG["device"]]


wildcard_constraints:
    model="|".join(re.escape(name) for name in MODELS),
    # Only the tag this run measures has rules: another tag's committed results are read, never remade.
    hardware=re.escape(HARDWARE),
    variant="|".join(re.escape(v) for v in VARIANTS),
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


#: Fused artifact -> the graph it fuses: the FP32 export, or its FP16 conversion (fusion after FP16).
FUSION_SOURCE = {"ort-fp32": "onnx-fp32", "fp16-ort": "onnx-fp16"}


def fusion_source(wildcards):
    return f"results/models/{wildcards.model}/onnx/{FUSION_SOURCE[wildcards.fused]}.onnx"


def fusion_tolerance(wildcards):
    return parity_tolerance("fp16" if "fp16" in wildcards.fused else "fp32")


def onnxscript_fusions(wildcards):
    """Graphs from the dynamo exporter get onnxscript's ORT fusions before ONNX Runtime's own."""
    return setting("export", "exporter")(wildcards) == "dynamo"


def model_dir(wildcards):
    return f"results/models/{wildcards.model}/hf"


def reference_path(wildcards):
    return f"results/models/{wildcards.model}/reference.npz"


def benchmark_inputs(wildcards):
    inputs = {"model_dir": model_dir(wildcards), "reference": reference_path(wildcards)}
    if wildcards.variant in ONNX_VARIANTS:
        inputs["onnx"] = f"results/models/{wildcards.model}/onnx/{wildcards.variant}.onnx"
    return inputs


#: Benchmark settings that change what one job measures (the lists of batch sizes and sequence lengths
#: only add or remove jobs; the calibration sizes concern another job).
TIMING_KEYS = ("warmup_iterations", "min_iterations", "min_duration_s", "max_duration_s", "threads", "seed",
               "memory_limit_mb")


def pytorch_attn_implementation(wildcards):
    """Only the PyTorch variants use it; the ONNX ones get None, so changing it reruns PyTorch jobs only."""
    return BENCH["pytorch_attn_implementation"] if wildcards.variant in TORCH_VARIANTS else None


def benchmark_config_for_hash(wildcards):
    """The settings a benchmark result depends on, recorded as its config hash."""
    return {
        "model": MODELS[wildcards.model],
        "benchmark": {key: BENCH[key] for key in TIMING_KEYS},
        "pytorch_attn_implementation": pytorch_attn_implementation(wildcards),
        "hardware_tag": HARDWARE_TAG_SETTINGS,
    }


def variant_tolerance(wildcards):
    """The parity gate of the variant's precision, checked again on the execution provider being timed."""
    return parity_tolerance(VARIANT_PRECISION[wildcards.variant])


def expected_benchmarks(wildcards):
    return expand(
        "results/{hardware}/{model}/bench/{variant}/b{batch}_s{seq}.json",
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
        if Path(path).exists() or not failure_marker_path(path).exists()
    ]


def failed_benchmarks(wildcards):
    return [
        str(failure_marker_path(path))
        for path in expected_benchmarks(wildcards)
        if not Path(path).exists() and failure_marker_path(path).exists()
    ]


def artifact_sidecars(wildcards):
    return expand("results/models/{model}/onnx/{variant}.json", model=wildcards.model, variant=ALL_ONNX_VARIANTS)


def summaries_of_this_run():
    return expand("results/{hardware}/{model}/summary.csv", hardware=HARDWARE, model=MODELS)


def summaries_of_other_tags():
    """Summaries of this run's models committed from other machines: charts compare them, never rebuilt."""
    return [p for p in committed_summaries() if Path(p).parent.name in MODELS]


def committed_summaries():
    """Every summary on disk that this run does not produce: other tags, and models of other configs
    (an experiment's). The README lists them all."""
    produced = set(summaries_of_this_run())
    return [
        # local(): read from this checkout even when a storage plugin carries the run's own files.
        local(str(path))
        for path in sorted(Path("results").glob("*/*/summary.csv"))
        if path.parts[1] != "models" and str(path) not in produced
    ]


def chart_files():
    return expand("images/{model}/{chart}.png", model=MODELS, chart=CHARTS)

