# The build stage (inference_bench.build): the model, its reference outputs and every ONNX artifact.

#: Keys of a model entry that its source does not read.
_UNUSED_BY_SOURCE = {"random": ("hub_id", "revision", "path"), "local": ("hub_id", "revision", "model_type", "seed",
                     "config_overrides"), "hub": ("path", "model_type", "seed", "config_overrides")}


def model_spec(wildcards):
    """The model's entry, less what cannot change its files (a head's size, unless it is a random classifier):
    the download's params, so that a change to a key that matters, and only that, makes the model again."""
    entry = dict(MODELS[wildcards.model])
    if entry.get("task") != "sequence-classification" or entry.get("source") != "random":
        entry.pop("num_labels", None)
    for key in _UNUSED_BY_SOURCE[entry.get("source", "random")]:
        entry.pop(key, None)  # a random model's hub_id, say: the Python toolkit's entry has none
    if entry.get("task") == "feature-extraction":
        entry.pop("task")  # the default, as entries written before `task` existed mean it
    return entry


def model_source_files(wildcards):
    """A local model's source files are the download's inputs: when one changes, it is copied again."""
    spec = ModelSpec.from_config(MODELS[wildcards.model])
    return [str(path) for path in local_source_files(spec)] if spec.source == "local" else []


#: The artifact torch.onnx.export writes; every other one is made from it.
(EXPORTED_ARTIFACT,) = artifact_names("export")


def source_artifact(wildcards):
    """The ONNX file an artifact is made from (the registry's `source`)."""
    return artifact_path(wildcards.model, ARTIFACTS[wildcards.artifact].source)


def artifact_tolerance(wildcards):
    return parity_tolerance(ARTIFACTS[wildcards.artifact].precision)


def _calibrated(wildcards):
    """Static and mixed INT8 read a calibration set made from the model (and the corpus, where it reads text)."""
    return ARTIFACTS[wildcards.artifact].recipe in ("static", "mixed")


def int8_inputs(wildcards):
    if not _calibrated(wildcards):
        return {}
    return {"model_dir": model_dir(wildcards), "corpus": corpus_if_read(wildcards)}


def int8_recipe_settings(wildcards):
    """What a recipe's file depends on beyond the int8 section: its calibration set (static, mixed), the
    calibration method (static) and the accuracy gate it searches against (mixed). Only those: a dynamic
    recipe does not run again when the calibration method changes."""
    recipe = ARTIFACTS[wildcards.artifact].recipe
    settings = {"recipe": recipe}
    if _calibrated(wildcards):
        settings.update(max_length=config["accuracy"]["max_length"], seed=config["parity"]["seed"])
    if recipe == "static":
        settings["calibration_method"] = setting("int8", "calibration_method")(wildcards)
    if recipe == "mixed":
        settings["min_relative"] = config["accuracy"]["min_relative"]
        settings["mixed_base"] = setting("int8", "mixed_base")(wildcards)
        settings["mixed_margin"] = setting("int8", "mixed_margin")(wildcards)
        if settings["mixed_base"] == "static":
            settings["calibration_method"] = setting("int8", "calibration_method")(wildcards)
    return settings


def onnxscript_fusions(wildcards):
    """Graphs from the dynamo exporter get onnxscript's ORT fusions before ONNX Runtime's own."""
    return setting("export", "exporter")(wildcards) == "dynamo"


def built_artifacts():
    """Every ONNX artifact is built on every tag, so the size table shows the ones this tag does not time;
    except the calibrated INT8 recipes (static, mixed), built only where they are timed: they calibrate on
    text and search, and static INT8 may fail its gate on a real model."""
    timed = {VARIANTS[name].artifact for name in HARDWARE_TAG["variants"]}
    return [a.name for a in ARTIFACTS.values() if a.recipe not in ("static", "mixed") or a.name in timed]


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
