"""Benchmark pipeline for Transformer encoder inference: export, optimize, convert, measure, report."""

__all__ = ["CHARTS", "VARIANTS", "ONNX_VARIANTS", "TORCH_VARIANTS"]

#: Every variant the pipeline knows, in the order charts and tables show them.
VARIANTS: tuple[str, ...] = (
    "pytorch",
    "pytorch-compile",
    "pytorch-bf16",
    "pytorch-fp16",
    "onnx-fp32",
    "onnx-fp16",
    "ort-fp32",
    "ort-fp16",
    "fp16-ort",
    "ort-int8",
)
#: Variants that run an ONNX file named after the variant (results/models/{model}/onnx/{variant}.onnx).
#: ort-fp16 is fused, then converted to FP16 (the order ONNX Runtime and Optimum use); fp16-ort is
#: converted, then fused.
ONNX_VARIANTS: tuple[str, ...] = ("onnx-fp32", "onnx-fp16", "ort-fp32", "ort-fp16", "fp16-ort", "ort-int8")
#: Variants that run the Hugging Face model in PyTorch.
TORCH_VARIANTS: tuple[str, ...] = ("pytorch", "pytorch-compile", "pytorch-bf16", "pytorch-fp16")

#: The charts drawn per model, as images/{model}/{chart}.png.
CHARTS: tuple[str, ...] = ("speedup", "throughput", "latency", "efficiency", "memory", "tradeoff", "hardware")
