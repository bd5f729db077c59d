# The measuring stage (inference_bench.measure): comparisons of every variant, the machine's roofs.


include: "measure_inputs.smk"


# One comparison per (tag, model, batch, sequence): every variant of the tag timed side by side, in fresh
# processes taking turns in short blocks, until its speedups are known or its budget is spent
# (inference_bench.measure.rounds). Then one cheap job per variant
# turns the comparison into that variant's result: a variant that failed fails (or is recorded) alone.
rule benchmark:
    input:
        unpack(comparison_inputs),
    output:
        comparison=layout.COMPARISON,
    log:
        layout.log_path("{hardware}", "{model}", "bench", "b{batch}_s{seq}"),
    # Every core: benchmark jobs never share the machine with each other or with an export.
    threads: workflow.cores
    resources:
        **HARDWARE_RESOURCES,
    params:
        hardware_tag=HARDWARE_TAG_SETTINGS,
        variants=comparison_variants,
        design=benchmark_design(),
        timing=benchmark_timing(),
        threads=BENCH["threads"],
        seed=BENCH["seed"],
        attn_implementation=BENCH["pytorch_attn_implementation"],
        config_for_hash=benchmark_config_for_hash,
        code_hash=MEASURING_CODE,
        memory_limit_mb=BENCH["memory_limit_mb"],
        max_other_cpu_share=BENCH["max_other_cpu_share"],
        inputs=BENCH["inputs"],
        text_padding=BENCH["text_padding"],
        allocator=BENCH["allocator"],
    conda:
        BENCH_ENV
    script:
        "../scripts/benchmark.py"


rule variant_result:
    input:
        comparison=layout.COMPARISON,
    output:
        result=layout.BENCH_RESULT,
    log:
        layout.log_path("{hardware}", "{model}", "bench", "{variant}", "b{batch}_s{seq}"),
    params:
        on_failure=BENCH["on_failure"],
    # A script, not `run:`: Snakemake runs a `run:` block in a new Snakemake process that reads the whole
    # workflow again (2.5 s a job here, a minute per default run); a script starts a bare interpreter.
    conda:
        BENCH_ENV
    script:
        "../scripts/variant_result.py"


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
        max_other_cpu_share=BENCH["max_other_cpu_share"],
        code_hash=MEASURING_CODE,
    conda:
        BENCH_ENV
    script:
        "../scripts/calibrate.py"
