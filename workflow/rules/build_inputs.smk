# The input functions and parameters of build.smk, which includes this file (Snakemake's linter keeps
# functions and rules in separate files).
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


def built_artifacts(model):
    """Every ONNX artifact is built on every tag, so the size table shows the ones this tag does not time;
    except the calibrated INT8 recipes (static, mixed), built only where they are timed: they calibrate on
    text and search, and static INT8 may fail its gate on a real model."""
    timed = {VARIANTS[name].artifact for name in variants_of(model)}
    return [a.name for a in ARTIFACTS.values() if a.recipe not in ("static", "mixed") or a.name in timed]
