rule download_model:
    output:
        model_dir=directory("results/models/{model}/hf"),
    log:
        "logs/models/{model}/download_model.log",
    params:
        spec=model_spec,
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/download_model.py"


rule reference_outputs:
    input:
        model_dir=model_dir,
    output:
        reference="results/models/{model}/reference.npz",
    log:
        "logs/models/{model}/reference_outputs.log",
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/reference_outputs.py"


rule export_onnx:
    input:
        model_dir=model_dir,
        reference=reference_path,
    output:
        onnx="results/models/{model}/onnx/onnx-fp32.onnx",
        sidecar="results/models/{model}/onnx/onnx-fp32.json",
    log:
        "logs/models/{model}/export_onnx.log",
    benchmark:
        "results/models/{model}/benchmarks/export_onnx.tsv"
    params:
        exporter=setting("export", "exporter"),
        opset=setting("export", "opset"),
        attn_implementation=setting("export", "attn_implementation"),
        tolerance=parity_tolerance("fp32"),
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/export_onnx.py"


rule optimize_ort:
    input:
        onnx=fusion_source,
        model_dir=model_dir,
        reference=reference_path,
    output:
        onnx="results/models/{model}/onnx/{fused}.onnx",
        sidecar="results/models/{model}/onnx/{fused}.json",
    wildcard_constraints:
        fused="ort-fp32|fp16-ort",
    log:
        "logs/models/{model}/optimize_ort_{fused}.log",
    benchmark:
        "results/models/{model}/benchmarks/optimize_ort_{fused}.tsv"
    params:
        opt_level=setting("optimize", "opt_level"),
        require_full_fusion=setting("optimize", "require_full_fusion"),
        tolerance=fusion_tolerance,
        onnxscript_fusions=onnxscript_fusions,
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/optimize_ort.py"


rule convert_fp16:
    input:
        onnx="results/models/{model}/onnx/{stage}-fp32.onnx",
        reference=reference_path,
    output:
        onnx="results/models/{model}/onnx/{stage}-fp16.onnx",
        sidecar="results/models/{model}/onnx/{stage}-fp16.json",
    wildcard_constraints:
        stage="onnx|ort",
    log:
        "logs/models/{model}/convert_fp16_{stage}.log",
    benchmark:
        "results/models/{model}/benchmarks/convert_fp16_{stage}.tsv"
    params:
        keep_io_types=setting("fp16", "keep_io_types"),
        op_block_list=setting("fp16", "op_block_list"),
        tolerance=parity_tolerance("fp16"),
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/convert_fp16.py"


rule quantize_int8:
    input:
        onnx="results/models/{model}/onnx/ort-fp32.onnx",
        reference=reference_path,
    output:
        onnx="results/models/{model}/onnx/ort-int8.onnx",
        sidecar="results/models/{model}/onnx/ort-int8.json",
    log:
        "logs/models/{model}/quantize_int8.log",
    benchmark:
        "results/models/{model}/benchmarks/quantize_int8.tsv"
    params:
        per_channel=setting("int8", "per_channel"),
        reduce_range=setting("int8", "reduce_range"),
        tolerance=parity_tolerance("int8"),
    conda:
        "../../envs/pipeline-cpu.yaml"
    script:
        "../scripts/quantize_int8.py"
