rule benchmark:
    input:
        unpack(benchmark_inputs),
    output:
        result=layout.BENCH_RESULT,
    log:
        layout.log_path("{hardware}", "{model}", "bench", "{variant}", "b{batch}_s{seq}"),
    # Every core: benchmark jobs never share the machine with each other or with an export.
    threads: workflow.cores
    resources:
        **HARDWARE_RESOURCES,
    params:
        hardware_tag=HARDWARE_TAG_SETTINGS,
        timing=benchmark_timing(),
        threads=BENCH["threads"],
        seed=BENCH["seed"],
        attn_implementation=pytorch_attn_implementation,
        config_for_hash=benchmark_config_for_hash,
        tolerance=variant_tolerance,
        on_failure=BENCH["on_failure"],
        code_hash=MEASURING_CODE,
        memory_limit_mb=BENCH["memory_limit_mb"],
        max_other_cpu_share=BENCH["max_other_cpu_share"],
    conda:
        BENCH_ENV
    script:
        "../scripts/benchmark.py"


rule calibrate:
    input:
        machine_checked,
    output:
        calibration=layout.CALIBRATION,
    log:
        layout.log_path("{hardware}", "calibrate"),
    threads: workflow.cores
    resources:
        **HARDWARE_RESOURCES,
    params:
        hardware_tag=HARDWARE_TAG_SETTINGS,
        threads=BENCH["threads"],
        sizes=BENCH["calibration_matmul_sizes"],
        code_hash=MEASURING_CODE,
    conda:
        BENCH_ENV
    script:
        "../scripts/calibrate.py"
