rule benchmark:
    input:
        unpack(benchmark_inputs),
    output:
        result="results/{hardware}/{model}/bench/{variant}/b{batch}_s{seq}.json",
    log:
        "logs/{hardware}/{model}/bench/{variant}/b{batch}_s{seq}.log",
    # Every core: benchmark jobs never share the machine with each other or with an export.
    threads: workflow.cores
    params:
        hardware_tag={k: v for k, v in HARDWARE_TAG.items() if k != "variants"},
        timing={
            key: BENCH[key]
            for key in ("warmup_iterations", "min_iterations", "min_duration_s", "max_duration_s")
        },
        threads=BENCH["threads"],
        seed=BENCH["seed"],
        attn_implementation=BENCH["pytorch_attn_implementation"],
        config_for_hash=lambda wildcards: {
            "model": MODELS[wildcards.model],
            "benchmark": {k: v for k, v in BENCH.items() if k not in ("batch_sizes", "sequence_lengths")},
            "hardware_tag": HARDWARE_TAG,
        },
    conda:
        BENCH_ENV
    script:
        "../scripts/benchmark.py"
