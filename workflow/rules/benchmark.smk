rule benchmark:
    input:
        unpack(benchmark_inputs),
    output:
        result="results/{hardware}/{model}/bench/{variant}/b{batch}_s{seq}.json",
    log:
        "logs/{hardware}/{model}/bench/{variant}/b{batch}_s{seq}.log",
    # Every core: benchmark jobs never share the machine with each other or with an export.
    threads: workflow.cores
    resources:
        **HARDWARE_RESOURCES,
    params:
        hardware_tag=HARDWARE_TAG_SETTINGS,
        timing={
            key: BENCH[key]
            for key in ("warmup_iterations", "min_iterations", "min_duration_s", "max_duration_s")
        },
        threads=BENCH["threads"],
        seed=BENCH["seed"],
        attn_implementation=pytorch_attn_implementation,
        config_for_hash=benchmark_config_for_hash,
        tolerance=variant_tolerance,
        on_failure=BENCH["on_failure"],
        memory_limit_mb=BENCH["memory_limit_mb"],
    conda:
        BENCH_ENV
    script:
        "../scripts/benchmark.py"


rule calibrate:
    output:
        calibration="results/{hardware}/calibration.json",
    log:
        "logs/{hardware}/calibrate.log",
    threads: workflow.cores
    resources:
        **HARDWARE_RESOURCES,
    params:
        hardware_tag=HARDWARE_TAG_SETTINGS,
        threads=BENCH["threads"],
        sizes=BENCH["calibration_matmul_sizes"],
    conda:
        BENCH_ENV
    script:
        "../scripts/calibrate.py"
