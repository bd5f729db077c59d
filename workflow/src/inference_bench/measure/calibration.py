"""The machine's own limits on one hardware tag: how fast it multiplies matrices (per engine and precision,
at square sizes and at the model's own shapes), how fast it moves bytes (a STREAM-style triad and a read,
from memory and from the last-level cache), and, where the CPU says enough, its theoretical peak.

Each figure is the best time seen, not the median: a roof is what the machine was seen to reach. A row of
the summary is then bounded by the larger of its compute time and its memory time (inference_bench.report.roofline).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference_bench.terminal import LOG_ONLY
from inference_bench.measure.flops import Gemm
from inference_bench.hardware import DEVICE_PROVIDERS, _cpuinfo_field, runs_here
from inference_bench.variants import VARIANTS

log = logging.getLogger(__name__)

#: How long each shape is timed, at most, after two warm-up calls (at least `_MIN_CALLS` calls).
SHAPE_BUDGET_S = 0.1
_MIN_CALLS, _MAX_CALLS = 3, 50


def best_seconds(call: Callable[[], Any], budget_s: float = SHAPE_BUDGET_S, warmup: int = 2) -> float:
    """The fastest of as many calls as fit in `budget_s` (at least three)."""
    for _ in range(warmup):
        call()
    best, calls, deadline = float("inf"), 0, time.perf_counter() + budget_s
    while calls < _MIN_CALLS or (calls < _MAX_CALLS and time.perf_counter() < deadline):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
        calls += 1
    return best


def square(size: int) -> Gemm:
    return Gemm(f"square {size}", 1, size, size, size, weight=True)


def _matmul_session(gemm: Gemm, dtype: str, providers: list[str], threads: int, folder: Path):
    """A one-node ONNX graph of `gemm`: activations (input) times weights (an initializer, which the engine
    pre-packs, like a linear layer's), or times a second input for the attention products."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from inference_bench.build.ort_session import make_session

    rng = np.random.default_rng(0)
    lead = [gemm.batch] if gemm.batch > 1 else []
    if dtype == "int8":
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
        weights = rng.integers(-127, 127, (gemm.k, gemm.n), dtype=np.int8)
    else:
        np_type = np.float16 if dtype == "fp16" else np.float32
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type = y_type = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
        weights = rng.standard_normal((gemm.k, gemm.n)).astype(np_type)
    inputs = [helper.make_tensor_value_info("A", a_type, [*lead, gemm.m, gemm.k])]
    initializers = []
    if gemm.weight:
        initializers.append(numpy_helper.from_array(weights, "B"))
    else:
        inputs.append(helper.make_tensor_value_info("B", a_type, [*lead, gemm.k, gemm.n]))
    graph = helper.make_graph([node], "matmul", inputs, [helper.make_tensor_value_info("Y", y_type, None)],
                              initializer=initializers)
    path = folder / "matmul.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return make_session(path, providers=providers, threads=threads)


def _operand(shape: list[int], dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "int8":
        return rng.integers(0, 255, shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(np.float16 if dtype == "fp16" else np.float32)


def measure_gemms(device: str, threads: int, gemms: Iterable[Gemm],
                  budget_s: float = SHAPE_BUDGET_S) -> list[dict[str, Any]]:
    """GFLOP/s (GOP/s for INT8) of each matrix multiply, per engine and precision, at its best.

    ONNX Runtime: FP32 everywhere, INT8 (MatMulInteger, weight products only: the INT8 variants keep the
    attention products in FP32) on CPU, FP16 on CUDA. torch.matmul: FP32, BF16 where the CPU has
    avx512_bf16/AMX or on CUDA, FP16 on CUDA.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    unique = list({(g.batch, g.m, g.k, g.n, g.weight): g for g in gemms}.values())
    results: list[dict[str, Any]] = []

    def record(engine: str, dtype: str, gemm: Gemm, seconds: float) -> None:
        gflops = gemm.flops / seconds / 1e9
        results.append({"engine": engine, "precision": dtype, "gemm": gemm.name, "batch": gemm.batch,
                        "m": gemm.m, "k": gemm.k, "n": gemm.n, "best_s": seconds, "gflops": gflops})
        log.info("%s %s %s (%d x %d x %d x %d): %.1f GFLOP/s", engine, dtype, gemm.name, gemm.batch, gemm.m,
                 gemm.k, gemm.n, gflops, extra=LOG_ONLY)

    providers = list(DEVICE_PROVIDERS[device])
    with tempfile.TemporaryDirectory() as folder:
        for dtype in (["fp32", "fp16"] if device == "cuda" else ["fp32", "int8"]):
            for gemm in unique:
                if dtype == "int8" and not gemm.weight:
                    continue
                session = _matmul_session(gemm, dtype, providers, threads, Path(folder))
                lead = [gemm.batch] if gemm.batch > 1 else []
                feeds = {"A": _operand([*lead, gemm.m, gemm.k], dtype, 1)}
                if not gemm.weight:
                    feeds["B"] = _operand([*lead, gemm.k, gemm.n], dtype, 2)
                record("onnxruntime", dtype, gemm, best_seconds(_ort_call(session, feeds, device), budget_s))

    torch_device = torch.device(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for dtype, torch_dtype in torch_precisions(device).items():
        for gemm in unique:
            lead = [gemm.batch] if gemm.batch > 1 else []
            a = torch.randn(*lead, gemm.m, gemm.k, device=torch_device, dtype=torch_dtype)
            b = torch.randn(*(lead if not gemm.weight else []), gemm.k, gemm.n, device=torch_device,
                            dtype=torch_dtype)

            def call(a=a, b=b) -> None:
                torch.matmul(a, b)
                sync()

            record("torch", dtype, gemm, best_seconds(call, budget_s))
    if device == "cuda":
        torch.cuda.empty_cache()  # the comparison's workers, not this process, should hold the GPU's memory
    return results


def torch_precisions(device: str) -> dict[str, Any]:
    """The precisions the PyTorch variants that run on this device use: FP32, BF16 where the CPU has BF16
    instructions or on CUDA, FP16 on CUDA."""
    import torch

    return {v.precision: getattr(torch, v.torch_dtype) for v in VARIANTS.values()
            if v.engine == "torch" and runs_here(v, device) is None}


def measure_matmul_peaks(device: str, threads: int, sizes: Sequence[int] = (1024, 2048),
                         budget_s: float = SHAPE_BUDGET_S) -> list[dict[str, Any]]:
    """GFLOP/s (GOP/s for INT8) of square matrix multiplies of each size, per engine and precision."""
    measured = measure_gemms(device, threads, [square(size) for size in sizes], budget_s)
    return [{**entry, "size": entry["m"]} for entry in measured]


def _ort_call(session, feeds: dict[str, np.ndarray], device: str) -> Callable[[], Any]:
    if device != "cuda":
        return lambda: session.run(None, feeds)
    from inference_bench.build.ort_session import cuda_bound_call

    return cuda_bound_call(session, feeds, ["Y"])


def peak_by_precision(measurements: Iterable[dict[str, Any]]) -> dict[str, float]:
    """The best engine's and shape's GFLOP/s for each precision: the ceiling a variant of that precision is
    held to."""
    peaks: dict[str, float] = {}
    for entry in measurements:
        peaks[entry["precision"]] = max(peaks.get(entry["precision"], 0.0), entry["gflops"])
    return peaks


def last_level_cache_bytes(device: str = "cpu") -> int | None:
    """The size of the largest cache the kernel lists for CPU 0 (its L3 on the machines seen), or on CUDA the
    GPU's L2; None where unknown."""
    if device == "cuda":
        import torch

        return int(getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0)) or None
    sizes = []
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index[0-9]*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        sizes.append(int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text))
    return max(sizes) if sizes else None


def measure_bandwidth(device: str, threads: int, array_bytes: int, budget_s: float = 1.0) -> dict[str, Any]:
    """Sustained GB/s of a STREAM triad (a = b + s c, three arrays of `array_bytes` each, counted as STREAM
    counts: two reads and a write per element) and of a read (the sum of one array), at their best, with
    the engines' thread count."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    n = max(array_bytes // 4, 1024)
    triad_s, read_s = _stream_seconds(torch, torch.device(device), n, budget_s)
    if device == "cuda":
        torch.cuda.empty_cache()  # the arrays are gone: give their memory back
    result = {"array_bytes": n * 4, "triad_gbs": 3 * n * 4 / triad_s / 1e9, "read_gbs": n * 4 / read_s / 1e9}
    log.info("bandwidth, arrays of %.0f MiB: triad %.1f GB/s, read %.1f GB/s", n * 4 / 2**20,
             result["triad_gbs"], result["read_gbs"], extra=LOG_ONLY)
    return result


def _stream_seconds(torch: Any, device: Any, n: int, budget_s: float) -> tuple[float, float]:
    """The best seconds of a triad and of a read over arrays of `n` float32 values on `device`."""
    a, b, c = (torch.rand(n, device=device) for _ in range(3))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def triad() -> None:
        torch.add(b, c, alpha=3.0, out=a)
        sync()

    def read() -> None:
        b.sum()
        sync()

    return best_seconds(triad, budget_s), best_seconds(read, budget_s)


def measure_memory_roofs(device: str, threads: int) -> dict[str, Any]:
    """The memory roof: arrays far larger than the last-level cache (8 times it, 256 MiB at least); and the
    cache roof (three arrays filling half the last-level cache: a CPU's L3, a GPU's L2), which bounds a pass
    whose bytes fit in that cache. Each level's roof is the faster of its triad and its read."""
    llc = last_level_cache_bytes(device)
    levels = {"memory": measure_bandwidth(device, threads, max(8 * (llc or 0), 256 * 2**20))}
    if llc:
        levels["cache"] = measure_bandwidth(device, threads, llc // 6)
    for level in levels.values():
        level["roof_gbs"] = max(level["triad_gbs"], level["read_gbs"])
    return {"last_level_cache_bytes": llc, **levels}


#: FP32 FLOPs per cycle per core: FMA units x SIMD lanes x 2. AMD Zen 5 (family 26): two 512-bit FMA pipes;
#: Zen 2 to 4 (families 23, 25): two 256-bit ones (Zen 4 splits AVX-512 into two halves). Intel with
#: AVX-512: two 512-bit (one on some parts: an upper estimate); with AVX2 and FMA: two 256-bit.
def _fp32_flops_per_cycle(vendor: str | None, family: int | None, flags: set[str]) -> int | None:
    if vendor == "AuthenticAMD" and family is not None:
        return 64 if family >= 26 else 32 if family >= 23 else None
    if vendor == "GenuineIntel":
        return 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else None
    return None


def _physical_cores() -> int:
    pairs = set()
    for block in Path("/proc/cpuinfo").read_text().split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if "processor" in fields:
            pairs.add((fields.get("physical id"), fields.get("core id", fields["processor"])))
    return len(pairs) or (os.cpu_count() or 1)


def _clock_ghz() -> tuple[float, str] | None:
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6, \
            "the maximum clock cpufreq reports"
    except (OSError, ValueError):
        pass
    mhz = _cpuinfo_field("cpu MHz")
    if mhz:
        return float(mhz) / 1000, "the clock /proc/cpuinfo shows (on a VM a nominal figure: boost may run faster)"
    return None


def theoretical_peaks(device: str, threads: int) -> dict[str, Any] | None:
    """cores x FLOPs per cycle x clock, for FP32, and INT8 (four times FP32 with VNNI's 4-way dot products)
    and BF16 (twice, with avx512_bf16) where the CPU has them; None where the CPU or its clock is not known."""
    if device != "cpu":
        return None
    flags = set((_cpuinfo_field("flags") or "").split())
    family = _cpuinfo_field("cpu family")
    per_cycle = _fp32_flops_per_cycle(_cpuinfo_field("vendor_id"), int(family) if family else None, flags)
    clock = _clock_ghz()
    if per_cycle is None or clock is None:
        return None
    cores = min(_physical_cores(), threads or _physical_cores())
    fp32 = cores * per_cycle * clock[0]
    peaks = {"fp32": fp32}
    if {"avx512_vnni", "avx_vnni"} & flags:
        peaks["int8"] = 4 * fp32
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        peaks["bf16"] = 2 * fp32
    return {"cores": cores, "fp32_flops_per_cycle_per_core": per_cycle, "clock_ghz": clock[0],
            "clock_source": clock[1], "peak_gflops": peaks}


def implausible_roofs(roofs: dict[str, Any]) -> dict[str, str]:
    """The roofs of a calibration that make no physical sense, each with why: a cache roof below the memory
    roof (every cache is faster than the memory behind it; measured slow, it would call ordinary rows
    impossible). A matmul peak is not held to the theoretical one: that uses the clock the CPU reports, and a
    boosting core beats it (a Zen 5 here ran FP32 matmuls at 1.5 times its nominal-clock peak)."""
    problems: dict[str, str] = {}
    cache, memory = roofs.get("cache"), roofs.get("memory")
    if cache and memory and cache["roof_gbs"] < memory["roof_gbs"]:
        problems["cache"] = (f"the cache roof measured {cache['roof_gbs']:.1f} GB/s, below the memory roof of "
                             f"{memory['roof_gbs']:.1f} GB/s, and no cache is slower than the memory behind it")
    return problems


def without_implausible_roofs(roofs: dict[str, Any], problems: dict[str, str]) -> dict[str, Any]:
    """The roofs less those `problems` names: the bounds then rest on the roofs that make sense (a row whose
    bytes fit the cache is held to the memory roof)."""
    return {level: value for level, value in roofs.items() if level not in problems}
