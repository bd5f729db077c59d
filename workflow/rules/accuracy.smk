# The accuracy stage (inference_bench.accuracy): does a variant still do the model's job on real text?


include: "accuracy_inputs.smk"


rule text_reference:
    input:
        unpack(labelled_dataset),
        model_dir=model_dir,
        corpus=corpus_if_read,
    output:
        reference=layout.TEXT_REFERENCE,
    log:
        layout.log_path("models", "{model}", "text_reference"),
    params:
        max_length=config["accuracy"]["max_length"],
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/text_reference.py"


# Does the variant still do the model's job? Its sentence embeddings of the corpus against PyTorch FP32's, on
# the execution provider that is timed (inference_bench.accuracy.task). Models with a tokenizer only.
rule accuracy:
    input:
        unpack(accuracy_inputs),
    output:
        accuracy=layout.ACCURACY,
    log:
        layout.log_path("{hardware}", "{model}", "accuracy", "{variant}"),
    threads: workflow.cores
    resources:
        **HARDWARE_RESOURCES,
    params:
        hardware_tag=HARDWARE_TAG_SETTINGS,
        threads=BENCH["threads"],
        attn_implementation=BENCH["pytorch_attn_implementation"],
        min_relative=config["accuracy"]["min_relative"],
        code_hash=MEASURING_CODE,
    conda:
        BENCH_ENV
    script:
        "../scripts/accuracy.py"
