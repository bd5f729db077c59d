# The input functions and parameters of measure.smk, which includes this file (Snakemake's linter keeps
# functions and rules in separate files).
from inference_bench.hardware import HardwareTag, check_hardware, check_machine, check_variants_run_here
from inference_bench.measure.rounds import DESIGN_CONFIG_KEYS
from inference_bench.measure.timing import TIMING_CONFIG_KEYS


def comparison_inputs(wildcards):
    """The model, its reference outputs and the ONNX file of every variant of the tag that runs one."""
    machine_checked(wildcards)
    artifacts = sorted({VARIANTS[name].artifact for name in variants_of(wildcards.model) if VARIANTS[name].artifact})
    return {"model_dir": model_dir(wildcards), "reference": reference_path(wildcards),
            "onnx": [artifact_path(wildcards.model, artifact) for artifact in artifacts]}


def comparison_variants(wildcards):
    """Each variant of the tag, in its configured order, with the ONNX file it runs and its parity gate."""
    return [
        {
            "variant": name,
            "onnx_path": artifact_path(wildcards.model, VARIANTS[name].artifact) if VARIANTS[name].artifact else None,
            "tolerance": parity_tolerance(VARIANTS[name].tolerance_key),
        }
        for name in variants_of(wildcards.model)
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
            check_variants_run_here(wildcards.hardware, HARDWARE_TAG["variants"], HARDWARE_TAG["device"])
            check_machine(wildcards.hardware, HARDWARE_TAG["device"], layout.MACHINE.format(hardware=wildcards.hardware),
                          replace=config["replace_machine"])
        except PipelineError as error:
            refuse(error)
        _MACHINES_CHECKED.add(wildcards.hardware)
    return []


def benchmark_timing():
    return {key: BENCH[key] for key in TIMING_CONFIG_KEYS if key in BENCH}


def benchmark_design():
    return {key: BENCH[key] for key in DESIGN_CONFIG_KEYS}


def benchmark_config_for_hash(wildcards):
    """The settings a benchmark result depends on, recorded as its config hash."""
    keys = (*DESIGN_CONFIG_KEYS, "threads", "seed", "memory_limit_mb", "max_other_cpu_share", "pytorch_attn_implementation",
            "inputs", "text_padding", "allocator")
    return {
        "model": MODELS[wildcards.model],
        "benchmark": {**benchmark_timing(), **{key: BENCH[key] for key in keys}},
        "variants": comparison_variants(wildcards),
        "hardware_tag": HARDWARE_TAG_SETTINGS,
    }


def expected_benchmarks(model, batch_sizes=None, sequence_lengths=None):
    """Every variant's result at the configured shapes (or at the shapes given)."""
    return expand(
        layout.BENCH_RESULT,
        hardware=HARDWARE,
        model=model,
        variant=variants_of(model),
        batch=batch_sizes or BENCH["batch_sizes"],
        seq=sequence_lengths or BENCH["sequence_lengths"],
    )


def expected_comparisons(model):
    return expand(layout.COMPARISON, hardware=HARDWARE, model=model, batch=BENCH["batch_sizes"],
                  seq=BENCH["sequence_lengths"])


def _measured(model, *shapes):
    """Every expected result, but for jobs that failed last time (their marker stands, their result does
    not): those are summarized as failed rows instead of being run again. Delete a marker to retry."""
    return [
        path
        for path in expected_benchmarks(model, *shapes)
        if Path(path).exists() or not layout.failure_marker_path(path).exists()
    ]


def _failed(model, *shapes):
    return [
        str(layout.failure_marker_path(path))
        for path in expected_benchmarks(model, *shapes)
        if not Path(path).exists() and layout.failure_marker_path(path).exists()
    ]
