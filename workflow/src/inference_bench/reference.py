"""PyTorch FP32 outputs on padded inputs, saved once at export, against which every variant is compared.

Kept apart from the exporter so that an ONNX Runtime job reads it without importing torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUTPUT_NAME = "last_hidden_state"
_INPUT_PREFIX = "input:"


def save_reference(path: str | Path, feeds: dict[str, np.ndarray], output: np.ndarray) -> None:
    arrays = {f"{_INPUT_PREFIX}{name}": value for name, value in feeds.items()}
    arrays[OUTPUT_NAME] = output.astype(np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_reference(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inputs and PyTorch FP32 output; never unpickles (the file holds plain arrays)."""
    with np.load(path, allow_pickle=False) as data:
        feeds = {key[len(_INPUT_PREFIX) :]: data[key] for key in data.files if key.startswith(_INPUT_PREFIX)}
        return feeds, data[OUTPUT_NAME]
