# The input functions and parameters of accuracy.smk, which includes this file (Snakemake's linter keeps
# functions and rules in separate files).
def accuracy_inputs(wildcards):
    machine_checked(wildcards)
    inputs = {"model_dir": model_dir(wildcards), "text_reference": layout.TEXT_REFERENCE.format(model=wildcards.model)}
    if VARIANTS[wildcards.variant].artifact:
        inputs["onnx"] = artifact_path(wildcards.model, VARIANTS[wildcards.variant].artifact)
    return inputs


def labelled_dataset(wildcards):
    """The labelled file (accuracy.dataset), an input of a classification model's text reference."""
    dataset = config["accuracy"].get("dataset")
    if not dataset or MODELS[wildcards.model].get("task") != "sequence-classification":
        return {}
    return {"dataset": dataset}


def expected_accuracy(model):
    if not reads_text(model):
        return []
    return expand(layout.ACCURACY, hardware=HARDWARE, model=model, variant=variants_of(model))
