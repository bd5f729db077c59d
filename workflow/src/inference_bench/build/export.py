"""PyTorch -> ONNX through the SDPA math backend, checked by onnx.checker and against PyTorch."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from inference_bench.inputs.batches import model_input_names
from inference_bench.models import encoder_outputs, is_classifier, load_torch_model
from inference_bench.build.parity import ParityReport, Tolerance, parity_of_onnx
from inference_bench.build.reference import LOGITS_NAME, OUTPUT_NAME, load_reference

log = logging.getLogger(__name__)

EXPORTERS = ("torchscript", "dynamo")
#: torch.onnx's dynamo exporter emits opset 18 and newer only.
DYNAMO_MIN_OPSET = 18


def export_onnx(
    model_dir: str | Path,
    onnx_path: str | Path,
    reference_path: str | Path,
    opset: int = 17,
    attn_implementation: str = "eager",
    tolerance: Tolerance = Tolerance(max_abs_diff=1e-3, min_cosine=0.99999),
    exporter: str = "torchscript",
) -> ParityReport:
    """Export on the reference's padded inputs, check the graph, and gate on parity with the reference."""
    import onnx
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; known: {', '.join(EXPORTERS)}")
    if exporter == "dynamo" and opset < DYNAMO_MIN_OPSET:
        raise ValueError(f"the dynamo exporter needs export.opset >= {DYNAMO_MIN_OPSET}, got {opset}")

    model = load_torch_model(model_dir, attn_implementation=attn_implementation)
    names = model_input_names(model)
    feeds, _ = load_reference(reference_path)
    example = tuple(torch.from_numpy(feeds[name]) for name in names)
    positional = _PositionalEncoder(model, names)
    outputs = [OUTPUT_NAME, LOGITS_NAME] if is_classifier(model) else [OUTPUT_NAME]
    dynamic_outputs = {OUTPUT_NAME: {0: "batch", 1: "sequence"}, LOGITS_NAME: {0: "batch"}}

    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        if exporter == "torchscript":
            torch.onnx.export(
                positional,
                example,
                str(onnx_path),
                input_names=names,
                output_names=outputs,
                dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in names},
                              **{name: dynamic_outputs[name] for name in outputs}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        else:
            batch = torch.export.Dim("batch")
            sequence = torch.export.Dim("sequence", max=positional.max_sequence_length)
            program = torch.onnx.export(
                positional,
                example,
                input_names=names,
                output_names=outputs,
                # One spec per tensor of the wrapper's *tensors argument.
                dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in names),),
                opset_version=opset,
                dynamo=True,
            )
            program.save(str(onnx_path))
    onnx.checker.check_model(str(onnx_path))

    report = parity_of_onnx(onnx_path, reference_path)
    log.info("exported %s (%s, opset %d, %s attention): %s", onnx_path, exporter, opset, attn_implementation, report)
    report.check(tolerance, f"ONNX export {onnx_path.name}")
    return report


#: Model types whose embeddings derive position ids from input_ids (padding_idx + 1 + running count of
#: non-padding tokens). ONNX Runtime's embedding fusion has no pattern for that computation.
POSITIONS_AFTER_PADDING_IDX = frozenset({"roberta", "xlm-roberta", "camembert"})


class _PositionalEncoder(torch.nn.Module):
    """Takes the inputs positionally (as the TorchScript exporter wants) and returns the last hidden state
    (and a classifier's logits, as a second output).

    RoBERTa-style models number positions from padding_idx + 1. For those, the wrapper drops the first
    padding_idx + 1 rows of the position table (in place, on the model loaded for export) and feeds
    positions 0, 1, 2, ... sliced from a constant, as BERT does, so the embedding
    fuses into EmbedLayerNormalization, which numbers positions from 0. Both give the same embedding at
    every non-padding token of right-padded input (the tokenizers' default); padded positions are
    masked out of attention, and the parity check compares the real tokens against the unmodified model.
    """

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names
        config = model.config
        self.max_sequence_length = int(config.max_position_embeddings)
        self.explicit_positions = config.model_type in POSITIONS_AFTER_PADDING_IDX
        if self.explicit_positions:
            embeddings = model.base_model.embeddings
            table = embeddings.position_embeddings
            first = int(config.pad_token_id) + 1
            embeddings.position_embeddings = torch.nn.Embedding.from_pretrained(
                table.weight.detach()[first:].clone(), freeze=True
            )
            self.max_sequence_length = table.num_embeddings - first
            positions = torch.arange(self.max_sequence_length, dtype=torch.long).unsqueeze(0)
            self.register_buffer("position_ids", positions, persistent=False)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        inputs = dict(zip(self.names, tensors))
        if self.explicit_positions:
            inputs["position_ids"] = self.position_ids[:, : tensors[0].shape[1]]
        hidden, logits = encoder_outputs(self.model, inputs)
        return hidden if logits is None else (hidden, logits)

