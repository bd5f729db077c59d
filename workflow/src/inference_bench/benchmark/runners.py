"""Engines behind one interface: run for outputs (parity), prepare a timed call (benchmark)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from inference_bench.variants import Variant

log = logging.getLogger(__name__)


class Runner(Protocol):
    model_bytes: int

    def outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Last hidden state as FP32 on the host."""

    def timed_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
        """A call with inputs already on the device that returns once the device is done."""

    def peak_device_memory_bytes(self) -> int | None:
        """Peak GPU memory this process used, or None on CPU."""


class TorchRunner:
    """Hugging Face model in PyTorch: eager FP32 (the baseline), BF16, FP16, or through torch.compile."""

    def __init__(
        self,
        model_dir: str | Path,
        variant: Variant,
        device: str,
        threads: int,
        attn_implementation: str,
    ) -> None:
        import torch

        from inference_bench.hardware import runs_here
        from inference_bench.models import load_torch_model

        if variant.engine != "torch":
            raise ValueError(f"{variant.name} is not a PyTorch variant")
        unavailable = runs_here(variant, device)
        if unavailable:
            raise ValueError(unavailable)
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        model = load_torch_model(model_dir, attn_implementation=attn_implementation)
        model = model.to(device=self.device, dtype=getattr(torch, variant.torch_dtype))
        self.model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        # Shapes are fixed within a job, so compile without dynamic shapes: the parity batch and the
        # timed batch each compile once, the second during warm-up.
        self.model = torch.compile(model, dynamic=False) if variant.compiled else model
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _to_device(self, feeds: dict[str, np.ndarray]) -> dict:
        return {k: self._torch.from_numpy(v).to(self.device) for k, v in feeds.items()}

    def outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        with self._torch.inference_mode():
            hidden = self.model(**self._to_device(feeds)).last_hidden_state
        return hidden.float().cpu().numpy()

    def timed_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
        torch = self._torch
        inputs = self._to_device(feeds)
        synchronize = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)

        def call() -> None:
            with torch.inference_mode():
                self.model(**inputs)
            synchronize()

        return call

    def peak_device_memory_bytes(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return int(self._torch.cuda.max_memory_allocated(self.device))


class OrtRunner:
    """An ONNX file in ONNX Runtime; on CUDA with IO binding, so host-device copies stay out of the timing."""

    def __init__(self, onnx_path: str | Path, providers: list[str], threads: int) -> None:
        from inference_bench.artifacts import describe_file, verify_artifact
        from inference_bench.ort_session import make_session

        verify_artifact(onnx_path)
        self.session = make_session(onnx_path, providers=providers, threads=threads)
        self.on_cuda = "CUDAExecutionProvider" in self.session.get_providers()[:1]
        self.model_bytes = describe_file(onnx_path)["file_bytes"]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        from inference_bench.ort_session import run_once

        return np.asarray(run_once(self.session, feeds), dtype=np.float32)

    def timed_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
        feeds = {name: feeds[name] for name in self.input_names}
        if not self.on_cuda:
            session, output = self.session, [self.output_name]
            return lambda: session.run(output, feeds)
        from inference_bench.ort_session import cuda_bound_call

        return cuda_bound_call(self.session, feeds, [self.output_name])

    def peak_device_memory_bytes(self) -> int | None:
        # ONNX Runtime's CUDA arena keeps what it grew to, so after the timed runs the process's
        # device memory is its peak.
        return _process_gpu_bytes() if self.on_cuda else None


def _process_gpu_bytes() -> int | None:
    """Device memory this process holds on GPU 0, through NVML (ONNX Runtime's allocator is invisible
    to torch); None where NVML is missing or does not report per-process usage."""
    import os

    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if process.pid == os.getpid() and process.usedGpuMemory is not None:
                return int(process.usedGpuMemory)
    except Exception:  # NVML absent or unsupported: the result says None rather than a guess
        return None
    return None
