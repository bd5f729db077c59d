"""Task-level accuracy: the corpus, mean pooling, agreement with FP32, the gate."""

from __future__ import annotations

import numpy as np
import pytest

from inference_bench.inputs.corpus import load_corpus
from inference_bench.accuracy.task import TASK_METRIC, accuracy_record, agreement, embed, mean_pooled, save_text_reference


def test_the_corpus_is_natural_english_from_a_few_words_to_long_passages():
    corpus = load_corpus()
    words = [len(text.split()) for text in corpus]
    assert len(corpus) >= 250 and min(words) <= 5 and max(words) >= 300
    assert not any(text.startswith("#") for text in corpus)


def test_mean_pooling_ignores_padding_and_normalizes():
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    pooled = mean_pooled(hidden, np.array([[1, 1, 0]]))
    assert np.allclose(pooled, [[1.0, 0.0]])


def test_embedding_keeps_the_order_of_the_texts_whatever_the_batching():
    rng = np.random.default_rng(0)
    mask = np.zeros((7, 9), dtype=np.int64)
    for row, length in enumerate([9, 2, 5, 1, 7, 3, 9]):
        mask[row, :length] = 1
    feeds = {"input_ids": rng.integers(0, 50, size=(7, 9)), "attention_mask": mask}
    table = rng.standard_normal((50, 4))

    def outputs(batch):
        return table[batch["input_ids"]]

    whole = embed(outputs, feeds, batch_size=7)
    assert np.allclose(embed(outputs, feeds, batch_size=2), whole)
    assert np.allclose(whole[3], table[feeds["input_ids"][3, 0]] / np.linalg.norm(table[feeds["input_ids"][3, 0]]))


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_agreement_is_perfect_for_the_same_embeddings_and_drops_with_noise():
    reference = _unit(np.random.default_rng(1).standard_normal((60, 16)))
    same = agreement(reference, reference.copy())
    assert same[TASK_METRIC] == pytest.approx(1.0) and same["top10_overlap"] == 1.0
    assert same["sentence_cosine_min"] == pytest.approx(1.0)
    noisy = agreement(reference, _unit(reference + 0.3 * np.random.default_rng(2).standard_normal((60, 16))))
    assert 0.2 < noisy[TASK_METRIC] < 0.99 and noisy["top10_overlap"] < 1.0
    assert noisy["sentence_cosine_min"] < noisy["sentence_cosine_mean"] < 1.0


@pytest.mark.parametrize(("noise", "passed"), [(0.0, True), (0.3, False)])
def test_the_gate_passes_fp32_agreement_and_fails_a_damaged_variant(tmp_path, noise, passed):
    rng = np.random.default_rng(3)
    table = rng.standard_normal((40, 16))
    feeds = {"input_ids": rng.integers(0, 40, size=(30, 6)), "attention_mask": np.ones((30, 6), dtype=np.int64)}

    def fp32(batch):
        return table[batch["input_ids"]]

    save_text_reference(tmp_path / "ref.npz", feeds, embed(fp32, feeds), source="test")
    damaged = table + noise * rng.standard_normal(table.shape)
    record = accuracy_record("ort-int8", tmp_path / "ref.npz", lambda batch: damaged[batch["input_ids"]], 0.99, "cpu")
    assert record["passed"] is passed and record["task_metric"] == TASK_METRIC
    assert record["relative_to_fp32"] == record[TASK_METRIC] and record["sentences"] == 30
