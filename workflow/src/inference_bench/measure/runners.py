"""Engines behind one interface: run for outputs (parity), prepare a timed call (benchmark)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from inference_bench.variants import Variant

log = logging.getLogger(__name__)


class Runner(Protocol):
    model_bytes: int

    def outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Last hidden state as FP32 on the host."""

    def logits(self, feeds: dict[str, np.ndarray]) -> np.ndarray | None:
        """A classification model's logits as FP32 on the host; None for an encoder without a head."""

    def timed_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
        """A call with inputs already on the device that returns once the device is done."""

    def peak_device_memory_bytes(self) -> int | None:
        """Peak GPU memory this process used, or None on CPU."""

    def compile_counters(self) -> dict[str, int] | None:
        """The compiler's running counts (frames compiled, graph breaks) for an engine that compiles, else None."""


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

        from inference_bench.models import is_classifier, load_torch_model

        if variant.engine != "torch":
            raise ValueError(f"{variant.name} is not a PyTorch variant")
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        model = load_torch_model(model_dir, attn_implementation=attn_implementation)
        model = model.to(device=self.device, dtype=getattr(torch, variant.torch_dtype))
        self.classifier = is_classifier(model)
        self.model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        # Shapes are fixed within a job, so compile without dynamic shapes: the parity batch and the
        # timed batch each compile once, the second during warm-up.
        self.compiled = variant.compiled
        if variant.compiled:
            # Compile in this process: inductor's pool of compile workers would otherwise still be starting
            # up while the calls are timed, and the quiet-machine check would count them as neighbours.
            import torch._inductor.config

            torch._inductor.config.compile_threads = 1
        self.model = torch.compile(model, dynamic=False) if variant.compiled else model
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _to_device(self, feeds: dict[str, np.ndarray]) -> dict:
        return {k: self._torch.from_numpy(v).to(self.device) for k, v in feeds.items()}

    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        with self._torch.inference_mode():
            out = self.model(**self._to_device(feeds), output_hidden_states=self.classifier, return_dict=True)
        hidden = out.hidden_states[-1] if self.classifier else out.last_hidden_state
        logits = out.logits.float().cpu().numpy() if self.classifier else None
        return hidden.float().cpu().numpy(), logits

    def outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._run(feeds)[0]

    def logits(self, feeds: dict[str, np.ndarray]) -> np.ndarray | None:
        return self._run(feeds)[1]

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

    def compile_counters(self) -> dict[str, int] | None:
        """torch._dynamo's running counts: frames compiled (a recompilation compiles one more), graph breaks."""
        if not self.compiled:
            return None
        from torch._dynamo.utils import counters

        return {"frames_compiled": int(counters["frames"]["total"]),
                "graph_breaks": int(sum(counters["graph_break"].values())),
                "unique_graphs": int(counters["stats"]["unique_graphs"])}


class OrtRunner:
    """An ONNX file in ONNX Runtime; on CUDA with IO binding, so host-device copies stay out of the timing,
    and with `cuda_graph`, replayed from a captured CUDA graph at the job's fixed shape."""

    def __init__(self, onnx_path: str | Path, providers: list[str], threads: int, cuda_graph: bool = False) -> None:
        from inference_bench.artifacts import describe_file, verify_artifact
        from inference_bench.build.ort_session import make_session

        verify_artifact(onnx_path)
        self._path, self._providers, self._threads, self._cuda_graph = onnx_path, providers, threads, cuda_graph
        wants_cuda = providers[:1] == ["CUDAExecutionProvider"]
        if cuda_graph and not wants_cuda:
            raise ValueError("CUDA graphs need the CUDA execution provider")
        # What the CUDA context alone holds, before any model: subtracted from the peak, so ONNX Runtime's
        # figure is what its allocations took, as torch's allocator reports for PyTorch.
        self._context_bytes = _cuda_context_bytes() if wants_cuda else None
        options = {"CUDAExecutionProvider": {"enable_cuda_graph": "1"}} if cuda_graph else None
        self.session = make_session(onnx_path, providers=providers, threads=threads, provider_options=options)
        self._plain_session: Any = None
        self.on_cuda = "CUDAExecutionProvider" in self.session.get_providers()[:1]
        self.model_bytes = describe_file(onnx_path)["file_bytes"]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name

    def _untimed_session(self) -> Any:
        """The session for parity and accuracy calls. A captured CUDA graph replays one shape into fixed
        buffers, so other shapes run through a plain session of the same file on the same provider (the
        kernels a graph replays), opened once; `timed_call` releases it, so its memory is not the variant's."""
        if not self._cuda_graph:
            return self.session
        if self._plain_session is None:
            from inference_bench.build.ort_session import make_session

            self._plain_session = make_session(self._path, providers=self._providers, threads=self._threads)
        return self._plain_session

    def outputs(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        from inference_bench.build.ort_session import run_once

        return np.asarray(run_once(self._untimed_session(), feeds), dtype=np.float32)

    def logits(self, feeds: dict[str, np.ndarray]) -> np.ndarray | None:
        from inference_bench.build.ort_session import declared_feeds
        from inference_bench.build.reference import LOGITS_NAME

        if LOGITS_NAME not in {output.name for output in self.session.get_outputs()}:
            return None
        session = self._untimed_session()
        return np.asarray(session.run([LOGITS_NAME], declared_feeds(session, feeds))[0], dtype=np.float32)

    def timed_call(self, feeds: dict[str, np.ndarray]) -> Callable[[], None]:
        self._plain_session = None
        feeds = {name: feeds[name] for name in self.input_names}
        if not self.on_cuda:
            # Every output, as PyTorch computes every output (a classifier's logits beside the hidden state).
            session, outputs = self.session, [output.name for output in self.session.get_outputs()]
            return lambda: session.run(outputs, feeds)
        from inference_bench.build.ort_session import cuda_bound_call

        shapes = None
        if self._cuda_graph:
            hidden = self.session.get_outputs()[0].shape[-1]
            if not isinstance(hidden, int):
                raise ValueError(f"{self._path}: CUDA graphs need a fixed hidden size in the output, got {hidden!r}")
            batch, sequence = next(iter(feeds.values())).shape[:2]
            shapes = {self.output_name: (batch, sequence, hidden)}
        return cuda_bound_call(self.session, feeds, [self.output_name], output_shapes=shapes)

    def peak_device_memory_bytes(self) -> int | None:
        # ONNX Runtime's CUDA arena keeps what it grew to, so after the timed runs the process's device memory
        # is its peak; the CUDA context measured before the model loaded is not the model's.
        if not self.on_cuda:
            return None
        used = _process_gpu_bytes()
        if used is None or self._context_bytes is None:
            return None
        return max(used - self._context_bytes, 0)

    def compile_counters(self) -> dict[str, int] | None:
        return None


def _cuda_context_bytes() -> int | None:
    """Device memory of this process with a CUDA context and nothing else: torch creates the context (and
    loads the CUDA libraries ONNX Runtime's provider links to)."""
    try:
        import torch

        torch.empty(0, device="cuda")
        torch.cuda.synchronize()
    except Exception:  # no torch or no GPU: the provider check says why
        return None
    return _process_gpu_bytes()


def _process_gpu_bytes() -> int | None:
    """Device memory this process holds on GPU 0, through NVML (ONNX Runtime's allocator is invisible
    to torch); where NVML is missing, the device's used memory from the CUDA runtime (the lent machines run
    one job at a time, so that is this process's); None when neither is available."""
    import os

    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if process.pid == os.getpid() and process.usedGpuMemory is not None:
                return int(process.usedGpuMemory)
    except Exception:  # NVML absent or unsupported: fall back to the device-wide figure
        pass
    try:
        import torch

        free, total = torch.cuda.mem_get_info(0)
        return int(total - free)
    except Exception:
        return None
