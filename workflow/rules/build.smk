# The build stage (inference_bench.build): the model, its reference outputs and every ONNX artifact.


include: "build_inputs.smk"


rule download_model:
    input:
        source_files=model_source_files,
    output:
        model_dir=directory(layout.MODEL_DIR),
    log:
        layout.log_path("models", "{model}", "download_model"),
    params:
        spec=model_spec,
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/download_model.py"


rule reference_outputs:
    input:
        model_dir=model_dir,
        corpus=corpus_if_read,
    output:
        reference=layout.REFERENCE,
    log:
        layout.log_path("models", "{model}", "reference_outputs"),
    params:
        seed=config["parity"]["seed"],
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/reference_outputs.py"


rule export_onnx:
    input:
        model_dir=model_dir,
        reference=reference_path,
    output:
        onnx=layout.ONNX_ARTIFACT.format(model="{model}", artifact=EXPORTED_ARTIFACT),
        sidecar=layout.ONNX_SIDECAR.format(model="{model}", artifact=EXPORTED_ARTIFACT),
    log:
        layout.log_path("models", "{model}", "export_onnx"),
    benchmark:
        layout.STAGE_BENCHMARK.format(model="{model}", step="export_onnx")
    params:
        exporter=setting("export", "exporter"),
        opset=setting("export", "opset"),
        attn_implementation=setting("export", "attn_implementation"),
        tolerance=parity_tolerance("fp32"),
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/export_onnx.py"


# The rules below make every artifact of their stage in the registry (inference_bench.variants.ARTIFACTS),
# each from the source artifact the registry names.


rule optimize_ort:
    input:
        onnx=source_artifact,
        model_dir=model_dir,
        reference=reference_path,
    output:
        onnx=layout.ONNX_ARTIFACT,
        sidecar=layout.ONNX_SIDECAR,
    wildcard_constraints:
        artifact=one_of(artifact_names("fuse")),
    log:
        layout.log_path("models", "{model}", "optimize_ort_{artifact}"),
    benchmark:
        layout.STAGE_BENCHMARK.format(model="{model}", step="optimize_ort_{artifact}")
    params:
        opt_level=setting("optimize", "opt_level"),
        require_full_fusion=setting("optimize", "require_full_fusion"),
        tolerance=artifact_tolerance,
        onnxscript_fusions=onnxscript_fusions,
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/optimize_ort.py"


rule convert_fp16:
    input:
        onnx=source_artifact,
        reference=reference_path,
    output:
        onnx=layout.ONNX_ARTIFACT,
        sidecar=layout.ONNX_SIDECAR,
    wildcard_constraints:
        artifact=one_of(artifact_names("fp16")),
    log:
        layout.log_path("models", "{model}", "convert_fp16_{artifact}"),
    benchmark:
        layout.STAGE_BENCHMARK.format(model="{model}", step="convert_fp16_{artifact}")
    params:
        keep_io_types=setting("fp16", "keep_io_types"),
        op_block_list=setting("fp16", "op_block_list"),
        tolerance=artifact_tolerance,
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/convert_fp16.py"


rule quantize_int8:
    input:
        unpack(int8_inputs),
        onnx=source_artifact,
        reference=reference_path,
    output:
        onnx=layout.ONNX_ARTIFACT,
        sidecar=layout.ONNX_SIDECAR,
    wildcard_constraints:
        artifact=one_of(artifact_names("int8")),
    log:
        layout.log_path("models", "{model}", "quantize_int8_{artifact}"),
    benchmark:
        layout.STAGE_BENCHMARK.format(model="{model}", step="quantize_int8_{artifact}")
    params:
        per_channel=setting("int8", "per_channel"),
        reduce_range=setting("int8", "reduce_range"),
        recipe=int8_recipe_settings,
        tolerance=artifact_tolerance,
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/quantize_int8.py"
