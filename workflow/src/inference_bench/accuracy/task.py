"""Does a variant still do the model's job? Sentence embeddings (and a classifier's labels) on real text,
against PyTorch FP32.

The corpus (workflow/resources/corpus.txt) is natural English from a few words to past a 256-token model's
limit. One text in four calibrates INT8 recipes (inference_bench.build.quantize); the others are the ones every
variant is judged on. Each text is embedded the way sentence-embedding model cards prescribe: mean pooling
of the last hidden state over the real (unpadded) tokens, L2-normalized. A variant's embeddings are compared
with PyTorch FP32's: the cosine per sentence (mean and worst), retrieval agreement (the overlap of each
sentence's 10 nearest neighbours) and the Spearman correlation of all pairwise similarities. The last is the
task metric of an encoder: FP32 agrees with itself at 1.0, so a variant keeps `accuracy.min_relative` of
FP32 when its Spearman correlation is at least that (MLPerf's "99% of FP32" idea, on what an embedding is
used for). A classifier's task metric is the share of texts given FP32's label, or, with a labelled file
(`accuracy.dataset`), its accuracy on it divided by FP32's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference_bench.artifacts import atomic_path
from inference_bench.inputs.corpus import (
    CORPUS_PATH,
    evaluation_texts,
    has_tokenizer,
    length_batches,
    load_corpus,
    tokenize_corpus,
)

log = logging.getLogger(__name__)

TASK_METRIC = "pairwise_spearman"
#: A classifier's task metrics: the share of texts given the label PyTorch FP32 gives, and accuracy on a
#: labelled file relative to FP32's.
LABEL_AGREEMENT = "label_agreement"
DATASET_ACCURACY = "dataset_accuracy"
TOP_K = 10
_INPUT_PREFIX = "input:"
_DATASET_PREFIX = "dataset:"


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(batch, sequence, hidden) -> (batch, hidden): the mean over real tokens, L2-normalized."""
    weights = mask[..., None].astype(np.float64)
    pooled = (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def embed(outputs: Callable[[dict[str, np.ndarray]], np.ndarray], feeds: dict[str, np.ndarray],
          batch_size: int = 16) -> np.ndarray:
    """Sentence embeddings of every row of `feeds`, in batches of similar lengths (each padded to its own
    longest, as a serving system would)."""
    result: np.ndarray | None = None
    for rows, batch in length_batches(feeds, batch_size):
        pooled = mean_pooled(outputs(batch), batch["attention_mask"])
        if result is None:
            result = np.empty((len(feeds["attention_mask"]), pooled.shape[1]))
        result[rows] = pooled
    assert result is not None
    return result


def _ranks(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(values.size)
    ranks[np.argsort(values, kind="stable")] = np.arange(values.size)
    return ranks


def agreement(reference: np.ndarray, candidate: np.ndarray, top_k: int = TOP_K) -> dict[str, float]:
    """How far `candidate`'s normalized embeddings are from `reference`'s, per sentence and for retrieval."""
    if reference.shape != candidate.shape:
        raise ValueError(f"embeddings of different shapes: {reference.shape} and {candidate.shape}")
    cosine = np.sum(reference * candidate, axis=1)
    similar_ref, similar_var = reference @ reference.T, candidate @ candidate.T
    np.fill_diagonal(similar_ref, -np.inf)
    np.fill_diagonal(similar_var, -np.inf)
    k = min(top_k, len(reference) - 1)
    near_ref = np.argsort(-similar_ref, axis=1)[:, :k]
    near_var = np.argsort(-similar_var, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(near_ref, near_var)])
    upper = np.triu_indices(len(reference), 1)
    spearman = np.corrcoef(_ranks(similar_ref[upper]), _ranks(similar_var[upper]))[0, 1]
    return {
        "sentences": len(reference),
        "sentence_cosine_mean": float(cosine.mean()),
        "sentence_cosine_min": float(cosine.min()),
        f"top{top_k}_overlap": float(overlap),
        TASK_METRIC: float(spearman),
    }


@dataclass(frozen=True)
class LabelledTexts:
    """A user's labelled file (`accuracy.dataset`), tokenized, with each label as the head's class index."""

    feeds: dict[str, np.ndarray]
    labels: np.ndarray


def read_labelled_csv(path: str | Path, label2id: dict[str, int], num_labels: int) -> tuple[list[str], np.ndarray]:
    """Texts and class indices from a CSV with `text` and `label` columns; a label is the class index or its
    name in the model's config (id2label). Anything else is refused, naming the row."""
    import pandas as pd

    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"text", "label"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: needs the columns text and label; missing {', '.join(sorted(missing))} "
                         f"(found: {', '.join(table.columns)})")
    if table.empty:
        raise ValueError(f"{path}: no rows")
    labels = []
    for row, (text, label) in enumerate(zip(table["text"], table["label"]), start=2):
        if not text.strip():
            raise ValueError(f"{path}, line {row}: empty text")
        label = label.strip()
        if label in label2id:
            labels.append(int(label2id[label]))
        elif label.isdigit() and int(label) < num_labels:
            labels.append(int(label))
        else:
            known = ", ".join(sorted(label2id)) or "none"
            raise ValueError(f"{path}, line {row}: label {label!r} is neither a class index below {num_labels} nor "
                             f"a label name of the model (id2label: {known})")
    return list(table["text"]), np.asarray(labels, dtype=np.int64)


def save_text_reference(path: str | Path, feeds: dict[str, np.ndarray], embeddings: np.ndarray, source: str,
                        logits: np.ndarray | None = None, dataset: LabelledTexts | None = None,
                        dataset_logits: np.ndarray | None = None) -> None:
    arrays = {f"{_INPUT_PREFIX}{name}": value for name, value in feeds.items()}
    if logits is not None:
        arrays["logits"] = logits.astype(np.float32)
    if dataset is not None and dataset_logits is not None:
        arrays |= {f"{_DATASET_PREFIX}{name}": value for name, value in dataset.feeds.items()}
        arrays |= {"dataset_labels": dataset.labels, "dataset_logits": dataset_logits.astype(np.float32)}
    with atomic_path(path) as tmp:
        np.savez(tmp, embeddings=embeddings.astype(np.float32), source=np.array(source), **arrays)


@dataclass(frozen=True)
class TextReference:
    """PyTorch FP32 on the corpus's judged texts (and a classifier's logits, and a labelled file's)."""

    feeds: dict[str, np.ndarray]
    embeddings: np.ndarray
    source: str
    logits: np.ndarray | None = None
    dataset: LabelledTexts | None = None
    dataset_logits: np.ndarray | None = None


def load_text_reference(path: str | Path) -> TextReference:
    with np.load(path, allow_pickle=False) as data:
        def prefixed(prefix: str) -> dict[str, np.ndarray]:
            return {key[len(prefix):]: data[key] for key in data.files if key.startswith(prefix)}

        dataset = LabelledTexts(prefixed(_DATASET_PREFIX), data["dataset_labels"]) if "dataset_labels" in data.files \
            else None
        return TextReference(
            prefixed(_INPUT_PREFIX), data["embeddings"].astype(np.float64), str(data["source"]),
            logits=data["logits"] if "logits" in data.files else None, dataset=dataset,
            dataset_logits=data["dataset_logits"] if dataset is not None else None)


def predict(logits: Callable[[dict[str, np.ndarray]], np.ndarray | None], feeds: dict[str, np.ndarray],
            batch_size: int = 16) -> np.ndarray:
    """A classifier's logits for every row of `feeds`, in batches of similar lengths, in the rows' order."""
    result: np.ndarray | None = None
    for rows, batch in length_batches(feeds, batch_size):
        values = logits(batch)
        if values is None:
            raise ValueError("this variant's model has no classification head, but the reference has logits")
        if result is None:
            result = np.empty((len(feeds["attention_mask"]), values.shape[1]))
        result[rows] = values
    assert result is not None
    return result


def text_reference_stage(model_dir: str | Path, out_path: str | Path, max_length: int = 512,
                         dataset: str | Path | None = None) -> None:
    """PyTorch FP32 (eager attention, SDPA's math backend) sentence embeddings of the corpus's judged texts;
    for a classification model also its logits on them, and on the labelled file `dataset` when given."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from inference_bench.inputs.batches import model_input_names
    from inference_bench.models import ArchitectureFacts, encoder_outputs, is_classifier, load_torch_model

    if not has_tokenizer(model_dir):
        raise ValueError(f"{model_dir} has no tokenizer: the accuracy stage needs one to read the corpus")
    model = load_torch_model(model_dir, attn_implementation="eager")
    facts = ArchitectureFacts.from_hf_config(model.config)
    names, length = model_input_names(model), min(max_length, facts.max_positions)
    feeds = tokenize_corpus(model_dir, evaluation_texts(load_corpus()), length, names)

    def run(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            hidden, logits = encoder_outputs(model, {k: torch.from_numpy(v) for k, v in batch.items()})
        return hidden.numpy(), None if logits is None else logits.numpy()

    embeddings = embed(lambda batch: run(batch)[0], feeds)
    log.info("%d texts, %d tokens, embedded by PyTorch FP32", len(embeddings), int(feeds["attention_mask"].sum()))
    logits = labelled = dataset_logits = None
    if is_classifier(model):
        logits = predict(lambda batch: run(batch)[1], feeds)
        if dataset is not None:
            texts, labels = read_labelled_csv(dataset, dict(model.config.label2id), int(model.config.num_labels))
            labelled = LabelledTexts(tokenize_corpus(model_dir, texts, length, names), labels)
            dataset_logits = predict(lambda batch: run(batch)[1], labelled.feeds)
            log.info("%d labelled texts from %s: PyTorch FP32 accuracy %.4f", len(labels), dataset,
                     float(np.mean(dataset_logits.argmax(axis=1) == labels)))
    elif dataset is not None:
        raise ValueError(f"accuracy.dataset is set, but {model_dir} has no classification head (task: "
                         f"sequence-classification): a labelled file needs labels to predict")
    save_text_reference(out_path, feeds, embeddings, source=str(CORPUS_PATH.name), logits=logits, dataset=labelled,
                        dataset_logits=dataset_logits)


def accuracy_record(variant: str, reference_path: str | Path, outputs: Callable[[dict[str, np.ndarray]], np.ndarray],
                    min_relative: float, device: str,
                    logits: Callable[[dict[str, np.ndarray]], np.ndarray | None] | None = None) -> dict[str, Any]:
    """A variant's agreement with PyTorch FP32 on the corpus, and whether it keeps `min_relative` of it. The
    task metric is the Spearman correlation of pairwise similarities for an encoder; for a classifier, the
    share of texts given FP32's label, or with a labelled file, its accuracy relative to FP32's."""
    reference = load_text_reference(reference_path)
    metrics: dict[str, Any] = agreement(reference.embeddings, embed(outputs, reference.feeds))
    task_metric, relative = TASK_METRIC, metrics[TASK_METRIC]  # FP32's agreement with itself is 1.0
    if reference.logits is not None:
        if logits is None:
            raise ValueError(f"{variant}: the reference holds a classifier's logits, and no logits were given")
        labels = predict(logits, reference.feeds).argmax(axis=1)
        metrics[LABEL_AGREEMENT] = float(np.mean(labels == reference.logits.argmax(axis=1)))
        task_metric, relative = LABEL_AGREEMENT, metrics[LABEL_AGREEMENT]
    if reference.dataset is not None and reference.dataset_logits is not None and logits is not None:
        truth = reference.dataset.labels
        predicted = predict(logits, reference.dataset.feeds).argmax(axis=1)
        fp32 = float(np.mean(reference.dataset_logits.argmax(axis=1) == truth))
        metrics |= {"dataset_rows": len(truth), DATASET_ACCURACY: float(np.mean(predicted == truth)),
                    "dataset_accuracy_fp32": fp32}
        task_metric = DATASET_ACCURACY
        relative = metrics[DATASET_ACCURACY] / fp32 if fp32 > 0 else float("nan")
    return {
        "variant": variant,
        "device": device,
        "corpus": reference.source,
        "tokens": int(reference.feeds["attention_mask"].sum()),
        **metrics,
        "task_metric": task_metric,
        "relative_to_fp32": relative,
        "min_relative": min_relative,
        "passed": bool(relative >= min_relative),
    }
