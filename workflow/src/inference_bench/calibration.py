"""The machine's own limit: matrix-multiply throughput per engine and precision on one hardware tag."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from inference_bench.hardware import DEVICE_PROVIDERS, runs_here
from inference_bench.variants import VARIANTS

log = logging.getLogger(__name__)

def _median_seconds(call: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return float(np.median(samples))


def matmul_session(size: int, dtype: str, providers: list[str], threads: int, folder: Path):
    """A one-node ONNX graph: activations (input) times weights (initializer), like a linear layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from inference_bench.ort_session import make_session

    rng = np.random.default_rng(0)
    if dtype == "int8":
        weights = numpy_helper.from_array(rng.integers(-127, 127, (size, size), dtype=np.int8), "W")
        node = helper.make_node("MatMulInteger", ["A", "W"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        np_type = np.float16 if dtype == "fp16" else np.float32
        weights = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np_type), "W")
        node = helper.make_node("MatMul", ["A", "W"], ["Y"])
        a_type = y_type = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "matmul", [helper.make_tensor_value_info("A", a_type, [size, size])],
        [helper.make_tensor_value_info("Y", y_type, [size, size])], initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / f"matmul_{dtype}.onnx"
    onnx.save(model, str(path))
    return make_session(path, providers=providers, threads=threads)


def measure_matmul_peaks(
    device: str, threads: int, sizes: Sequence[int] = (1024, 2048), repeats: int = 10
) -> list[dict[str, Any]]:
    """GFLOP/s (GOP/s for INT8) of square matrix multiplies of each size, per engine and precision."""
    results: list[dict[str, Any]] = []
    for size in sizes:
        results.extend(_measure_size(device, threads, size, repeats))
    return results


def _measure_size(device: str, threads: int, size: int, repeats: int) -> list[dict[str, Any]]:
    """One square size: GFLOP/s of a size x size x size multiply, per engine and precision.

    ONNX Runtime: FP32 everywhere, INT8 (MatMulInteger) on CPU, FP16 on CUDA. torch.matmul: FP32, BF16 where
    the CPU has avx512_bf16/AMX or on CUDA, FP16 on CUDA.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    flops = 2.0 * size**3
    results: list[dict[str, Any]] = []

    def record(engine: str, dtype: str, seconds: float) -> None:
        results.append({"engine": engine, "precision": dtype, "size": size, "median_s": seconds,
                        "gflops": flops / seconds / 1e9})
        log.info("%s %s matmul %d^3: %.1f GFLOP/s", engine, dtype, size, flops / seconds / 1e9)

    providers = list(DEVICE_PROVIDERS[device])
    ort_precisions = ["fp32", "fp16"] if device == "cuda" else ["fp32", "int8"]
    with tempfile.TemporaryDirectory() as folder:
        for dtype in ort_precisions:
            session = matmul_session(size, dtype, providers, threads, Path(folder))
            activations = np.random.default_rng(1).standard_normal((size, size))
            if dtype == "int8":
                activations = np.random.default_rng(1).integers(0, 255, (size, size), dtype=np.uint8)
            else:
                activations = activations.astype(np.float16 if dtype == "fp16" else np.float32)
            record("onnxruntime", dtype, _median_seconds(_ort_call(session, activations, device), repeats))

    torch_device = torch.device(device)
    # The precisions the PyTorch variants that run on this device use: FP32, BF16 where the CPU has BF16
    # instructions or on CUDA, FP16 on CUDA.
    torch_precisions = {
        v.precision: getattr(torch, v.torch_dtype)
        for v in VARIANTS.values()
        if v.engine == "torch" and runs_here(v, device) is None
    }
    for dtype, torch_dtype in torch_precisions.items():
        a = torch.randn(size, size, device=torch_device, dtype=torch_dtype)
        b = torch.randn(size, size, device=torch_device, dtype=torch_dtype)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

        def call(a=a, b=b, sync=sync) -> None:
            torch.matmul(a, b)
            sync()

        record("torch", dtype, _median_seconds(call, repeats))
    return results


def _ort_call(session, activations: np.ndarray, device: str) -> Callable[[], Any]:
    if device != "cuda":
        return lambda: session.run(None, {"A": activations})
    from inference_bench.ort_session import cuda_bound_call

    return cuda_bound_call(session, {"A": activations}, ["Y"])


def peak_by_precision(measurements: list[dict[str, Any]]) -> dict[str, float]:
    """The best engine's and size's GFLOP/s for each precision: the ceiling a variant of that precision is
    held to."""
    peaks: dict[str, float] = {}
    for entry in measurements:
        peaks[entry["precision"]] = max(peaks.get(entry["precision"], 0.0), entry["gflops"])
    return peaks
