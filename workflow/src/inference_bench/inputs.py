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

PARITY_SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "ONNX Runtime fuses attention, layer normalization and GELU into single kernels.",
    "Short one.",
    "Benchmarks are only worth the trust their method earns: warm up, repeat, report the spread, "
    "and always say which machine, which sequence length and which library versions produced them.",
)


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


def parity_inputs(
    model_dir: str | Path, facts: ArchitectureFacts, names: list[str], seed: int, max_length: int = 64
) -> dict[str, np.ndarray]:
    """A padded batch (attention masks with zeros, several lengths): real text where there is a tokenizer."""
    max_length = min(max_length, facts.max_positions - 2)
    tokenized = _tokenize(model_dir, max_length)
    if tokenized is not None:
        return {name: tokenized[name] for name in names if name in tokenized} | _missing_zeros(tokenized, names)
    rng = np.random.default_rng(seed)
    lengths = [max_length, (3 * max_length) // 4, max_length // 2, max(2, max_length // 8)]
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
            list(PARITY_SENTENCES), padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
        )
    except Exception as error:  # a broken tokenizer must not block parity: fall back to random ids
        log.warning("tokenizer in %s unusable (%s); parity uses random token ids", model_dir, error)
        return None
    return {key: np.asarray(value, dtype=np.int64) for key, value in encoded.items()}
