"""PyTorch FP32 outputs on padded inputs, saved once at export, against which every variant is compared.

Kept apart from the exporter so that an ONNX Runtime job reads it without importing torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference_bench.artifacts import atomic_path

OUTPUT_NAME = "last_hidden_state"
#: A classification model's second output.
LOGITS_NAME = "logits"
_INPUT_PREFIX = "input:"


def compute_reference(model_dir: str | Path, reference_path: str | Path, seed: int = 0) -> None:
    """PyTorch FP32 (eager attention, inside the SDPA math backend) on a padded batch: what every artifact
    and every benchmark job is compared with. A stage of its own, so that re-exporting (another opset,
    say) does not invalidate the PyTorch benchmarks."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from inference_bench.inputs.batches import model_input_names, parity_inputs
    from inference_bench.models import ArchitectureFacts, encoder_outputs, load_torch_model

    model = load_torch_model(model_dir, attn_implementation="eager")
    names = model_input_names(model)
    feeds = parity_inputs(model_dir, ArchitectureFacts.from_hf_config(model.config), names, seed=seed)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        output = encoder_outputs(model, {name: torch.from_numpy(feeds[name]) for name in names})[0].numpy()
    save_reference(reference_path, feeds, output)


def save_reference(path: str | Path, feeds: dict[str, np.ndarray], output: np.ndarray) -> None:
    arrays = {f"{_INPUT_PREFIX}{name}": value for name, value in feeds.items()}
    arrays[OUTPUT_NAME] = output.astype(np.float32)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_reference(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Inputs and PyTorch FP32 output; never unpickles (the file holds plain arrays)."""
    with np.load(path, allow_pickle=False) as data:
        feeds = {key[len(_INPUT_PREFIX) :]: data[key] for key in data.files if key.startswith(_INPUT_PREFIX)}
        return feeds, data[OUTPUT_NAME]
