"""Does a variant still do the model's job? Sentence embeddings on real text, against PyTorch FP32.

The corpus (workflow/resources/corpus.txt) is natural English from a few words to past a 256-token model's
limit. Each text is embedded the way sentence-embedding model cards prescribe: mean pooling of the last
hidden state over the real (unpadded) tokens, L2-normalized. A variant's embeddings are compared with PyTorch
FP32's: the cosine per sentence (mean and worst), retrieval agreement (the overlap of each sentence's 10
nearest neighbours) and the Spearman correlation of all pairwise similarities. The last is the task metric
the gate uses: FP32 agrees with itself at 1.0, so a variant keeps `accuracy.min_relative` of FP32 when its
Spearman correlation is at least that (MLPerf's "99% of FP32" idea, on what an embedding is used for).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inference_bench.artifacts import atomic_path

log = logging.getLogger(__name__)

CORPUS_PATH = Path(__file__).resolve().parents[2] / "resources" / "corpus.txt"
TASK_METRIC = "pairwise_spearman"
TOP_K = 10
_INPUT_PREFIX = "input:"


def load_corpus(path: str | Path = CORPUS_PATH) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


#: Every CALIBRATION_STRIDE-th text of the corpus calibrates INT8 recipes and steers their search; the
#: accuracy stage judges every variant on the others, so no recipe is scored on the texts it was fitted to.
CALIBRATION_STRIDE = 4


def calibration_texts(corpus: list[str]) -> list[str]:
    return corpus[CALIBRATION_STRIDE - 1 :: CALIBRATION_STRIDE]


def evaluation_texts(corpus: list[str]) -> list[str]:
    return [text for index, text in enumerate(corpus) if index % CALIBRATION_STRIDE != CALIBRATION_STRIDE - 1]


def has_tokenizer(model_dir: str | Path) -> bool:
    return any((Path(model_dir) / name).exists() for name in ("tokenizer.json", "vocab.txt", "vocab.json"))


def tokenize_corpus(model_dir: str | Path, texts: list[str], max_length: int,
                    input_names: list[str]) -> dict[str, np.ndarray]:
    """Every text tokenized (truncated to `max_length`), padded to the longest: one (texts, length) array per
    model input."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    encoded = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="np")
    feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in input_names if name in encoded}
    for name in input_names:
        feeds.setdefault(name, np.zeros_like(feeds["input_ids"]))
    return feeds


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


def length_batches(feeds: dict[str, np.ndarray], batch_size: int) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """The rows of `feeds` in batches of similar lengths, each cut to its own longest row: (rows, batch) pairs."""
    lengths = feeds["attention_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows].max())
        batches.append((rows, {name: np.ascontiguousarray(value[rows, :width]) for name, value in feeds.items()}))
    return batches


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


def save_text_reference(path: str | Path, feeds: dict[str, np.ndarray], embeddings: np.ndarray, source: str) -> None:
    arrays = {f"{_INPUT_PREFIX}{name}": value for name, value in feeds.items()}
    with atomic_path(path) as tmp:
        np.savez(tmp, embeddings=embeddings.astype(np.float32), source=np.array(source), **arrays)


def load_text_reference(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    with np.load(path, allow_pickle=False) as data:
        feeds = {key[len(_INPUT_PREFIX):]: data[key] for key in data.files if key.startswith(_INPUT_PREFIX)}
        return feeds, data["embeddings"].astype(np.float64), str(data["source"])


def text_reference_stage(model_dir: str | Path, out_path: str | Path, max_length: int = 512) -> None:
    """PyTorch FP32 (eager attention, SDPA's math backend) sentence embeddings of the corpus."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from inference_bench.inputs import model_input_names
    from inference_bench.models import ArchitectureFacts, load_torch_model

    if not has_tokenizer(model_dir):
        raise ValueError(f"{model_dir} has no tokenizer: the accuracy stage needs one to read the corpus")
    model = load_torch_model(model_dir, attn_implementation="eager")
    facts = ArchitectureFacts.from_hf_config(model.config)
    feeds = tokenize_corpus(model_dir, evaluation_texts(load_corpus()), min(max_length, facts.max_positions),
                            model_input_names(model))

    def outputs(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            return model(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state.numpy()

    embeddings = embed(outputs, feeds)
    log.info("%d texts, %d tokens, embedded by PyTorch FP32", len(embeddings), int(feeds["attention_mask"].sum()))
    save_text_reference(out_path, feeds, embeddings, source=str(CORPUS_PATH.name))


def accuracy_record(variant: str, reference_path: str | Path, outputs: Callable[[dict[str, np.ndarray]], np.ndarray],
                    min_relative: float, device: str) -> dict[str, Any]:
    """A variant's agreement with PyTorch FP32 on the corpus, and whether it keeps `min_relative` of it."""
    feeds, reference, source = load_text_reference(reference_path)
    metrics = agreement(reference, embed(outputs, feeds))
    relative = metrics[TASK_METRIC]  # FP32's agreement with itself is 1.0
    return {
        "variant": variant,
        "device": device,
        "corpus": source,
        "tokens": int(feeds["attention_mask"].sum()),
        **metrics,
        "task_metric": TASK_METRIC,
        "relative_to_fp32": relative,
        "min_relative": min_relative,
        "passed": bool(relative >= min_relative),
    }
