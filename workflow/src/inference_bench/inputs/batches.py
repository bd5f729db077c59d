"""Model inputs: fixed-length seeded token ids for timing, padded batches for parity."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from inference_bench.models import ArchitectureFacts

log = logging.getLogger(__name__)

_CANDIDATE_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Ids below this are special tokens in BERT-family vocabularies; timing inputs avoid them.
_FIRST_ORDINARY_ID = 1000

#: How many texts of the corpus the parity batch holds, spread over its lengths from shortest to longest.
PARITY_TEXTS = 16


def parity_texts(count: int = PARITY_TEXTS) -> list[str]:
    """Texts of the corpus (inference_bench.accuracy.task) at evenly spaced ranks of length: short and long ones."""
    from inference_bench.inputs.corpus import load_corpus

    corpus = sorted(load_corpus(), key=lambda text: (len(text), text))
    picks = np.linspace(0, len(corpus) - 1, count).round().astype(int)
    return [corpus[index] for index in picks]


def model_input_names(model: Any) -> list[str]:
    """The inputs an encoder's forward takes, in the order the ONNX graph will declare them."""
    parameters = inspect.signature(model.forward).parameters
    return [name for name in _CANDIDATE_INPUTS if name in parameters]


def timing_inputs(
    facts: ArchitectureFacts, names: list[str], batch_size: int, sequence_length: int, seed: int
) -> dict[str, np.ndarray]:
    """Token ids of exactly `sequence_length`, no padding, as ONNX Runtime's own benchmarks use."""
    if sequence_length > facts.max_positions:
        raise ValueError(
            f"sequence length {sequence_length} exceeds the model's max_position_embeddings "
            f"({facts.max_positions})"
        )
    rng = np.random.default_rng(seed)
    low = min(_FIRST_ORDINARY_ID, facts.vocab_size // 2)
    ids = rng.integers(low, facts.vocab_size, size=(batch_size, sequence_length), dtype=np.int64)
    ids[ids == facts.pad_token_id] = low
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }
    return {name: feeds[name] for name in names}


def text_inputs(
    model_dir: str | Path, names: list[str], batch_size: int, sequence_length: int, seed: int,
    padding: str = "max_length",
) -> dict[str, np.ndarray] | None:
    """Real sentences of the corpus (a seeded draw), tokenized and truncated to `sequence_length`, padded to
    it (`max_length`) or to the batch's longest (`longest`); None where the model has no tokenizer."""
    from inference_bench.inputs.corpus import has_tokenizer, load_corpus, tokenize_corpus

    if not has_tokenizer(model_dir):
        return None
    corpus = load_corpus()
    rng = np.random.default_rng(seed)
    texts = [corpus[i] for i in rng.choice(len(corpus), size=batch_size, replace=batch_size > len(corpus))]
    feeds = tokenize_corpus(model_dir, texts, sequence_length, names)
    if padding == "max_length" and feeds["input_ids"].shape[1] < sequence_length:
        from transformers import AutoTokenizer

        pad = AutoTokenizer.from_pretrained(model_dir).pad_token_id or 0
        width = sequence_length - feeds["input_ids"].shape[1]
        feeds = {name: np.pad(value, ((0, 0), (0, width)), constant_values=pad if name == "input_ids" else 0)
                 for name, value in feeds.items()}
    return feeds


def parity_inputs(
    model_dir: str | Path, facts: ArchitectureFacts, names: list[str], seed: int, max_length: int = 64,
    text_max_length: int = 128,
) -> dict[str, np.ndarray]:
    """A padded batch (attention masks with zeros, several lengths): real text where there is a tokenizer."""
    max_length = min(max_length, facts.max_positions - 2)
    tokenized = _tokenize(model_dir, min(text_max_length, facts.max_positions))
    if tokenized is not None:
        return {name: tokenized[name] for name in names if name in tokenized} | _missing_zeros(tokenized, names)
    return random_padded_batch(facts, names, seed, max_length)


def random_padded_batch(facts: ArchitectureFacts, names: list[str], seed: int, max_length: int,
                        rows: int = 4) -> dict[str, np.ndarray]:
    """Seeded random token ids in `rows` rows padded to `max_length`: full, 3/4, 1/2 and 1/8 of it, in turn."""
    rng = np.random.default_rng(seed)
    pattern = [max_length, (3 * max_length) // 4, max_length // 2, max(2, max_length // 8)]
    lengths = [pattern[row % len(pattern)] for row in range(rows)]
    ids = np.full((len(lengths), max_length), facts.pad_token_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    low = min(_FIRST_ORDINARY_ID, facts.vocab_size // 2)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.integers(low, facts.vocab_size, size=length)
        mask[row, :length] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {name: feeds[name] for name in names}


def _missing_zeros(tokenized: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    return {name: np.zeros_like(tokenized["input_ids"]) for name in names if name not in tokenized}


def _tokenize(model_dir: str | Path, max_length: int) -> dict[str, np.ndarray] | None:
    if not any((Path(model_dir) / name).exists() for name in ("tokenizer.json", "vocab.txt", "vocab.json")):
        return None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
        encoded = tokenizer(
            parity_texts(), padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
        )
    except Exception as error:  # a broken tokenizer must not block parity: fall back to random ids
        log.warning("tokenizer in %s unusable (%s); parity uses random token ids", model_dir, error)
        return None
    return {key: np.asarray(value, dtype=np.int64) for key, value in encoded.items()}
