"""The text every stage reads: the corpus (workflow/resources/corpus.txt), its split into calibration and
evaluation texts, a model directory's tokenizer, and batches of similar lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORPUS_PATH = Path(__file__).resolve().parents[3] / "resources" / "corpus.txt"


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
