"""ONNX Runtime sessions with explicit threads and execution providers."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def make_session(
    model_path: str | Path,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threads: int = 0,
    graph_optimization: str = "ORT_ENABLE_ALL",
    provider_options: dict[str, dict[str, str]] | None = None,
):
    """A session whose intra-op thread count is `threads` (0: ONNX Runtime's default, one per core), with
    `provider_options` per provider name (e.g. CUDA graphs: {"CUDAExecutionProvider": {"enable_cuda_graph": "1"}})."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in providers and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia pip packages, before the provider needs them
    requested = [(name, provider_options[name]) if provider_options and name in provider_options else name
                 for name in providers]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, graph_optimization)
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=requested)
    missing = [p for p in providers if p not in session.get_providers()]
    if missing:
        raise RuntimeError(
            f"ONNX Runtime could not enable {', '.join(missing)} for {model_path}; "
            f"available here: {', '.join(ort.get_available_providers())}"
        )
    return session


def declared_feeds(session, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`feeds` restricted to the inputs the graph declares (an export may drop an unused one)."""
    declared = {i.name for i in session.get_inputs()}
    return {k: v for k, v in feeds.items() if k in declared}


def run_once(session, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """First output, for feeds restricted to the inputs the graph declares."""
    return session.run(None, declared_feeds(session, feeds))[0]


def cuda_bound_call(
    session,
    feeds: dict[str, np.ndarray],
    output_names: Sequence[str],
    output_shapes: dict[str, tuple[int, ...]] | None = None,
) -> Callable[[], None]:
    """A timed call through IO binding: inputs copied to the GPU once, outputs left there, and the call returns
    only when the device is done, so host-device copies are not mistaken for model time. With
    `output_shapes`, the outputs are FP32 buffers allocated once (CUDA graphs replay into fixed addresses)."""
    import onnxruntime as ort

    binding = session.io_binding()
    resident = {name: ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0) for name, value in feeds.items()}
    for name, value in resident.items():
        binding.bind_ortvalue_input(name, value)
    for name in output_names:
        if output_shapes and name in output_shapes:
            buffer = ort.OrtValue.ortvalue_from_shape_and_type(output_shapes[name], np.float32, "cuda", 0)
            resident[name] = buffer
            binding.bind_ortvalue_output(name, buffer)
        else:
            binding.bind_output(name, "cuda", 0)

    def call() -> None:
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        _ = resident  # the device buffers must outlive the binding

    return call
