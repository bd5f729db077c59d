"""Every variant and every ONNX artifact the pipeline knows, each one record: everything else derives from here.

Adding a variant is one `Variant` record (plus, for a new kind of file, one `Artifact` record and its
converter function): the config schema's enum, the rules' wildcard constraints, the artifact a benchmark
job needs, the precision of its peak, its parity tolerance, the README's baseline sentences and the charts'
order and colours are all read from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Engine = Literal["torch", "onnxruntime"]
Precision = Literal["fp32", "fp16", "bf16", "int8"]
Device = Literal["cpu", "cuda"]
#: How an ONNX artifact is made from its source: exported from PyTorch, fused by ONNX Runtime's optimizer,
#: converted to FP16 by onnxconverter-common, quantized to INT8 by onnxruntime.quantization.
Stage = Literal["export", "fuse", "fp16", "int8"]
#: What a variant is to a reader: the baseline every speedup divides, a stronger PyTorch baseline that an
#: optimized variant must also beat, or an optimized variant.
Role = Literal["baseline", "stronger_baseline", "optimized"]
#: dynamic: activations quantized at run time; static: calibrated QDQ; mixed: dynamic, with the fewest MatMuls
#: kept in FP32 that keep the accuracy gate.
Int8Recipe = Literal["dynamic", "static", "mixed"]

BASELINE = "pytorch"


@dataclass(frozen=True)
class Artifact:
    """An ONNX file under results/models/{model}/onnx/{name}.onnx, made by `stage` from `source`."""

    name: str
    stage: Stage
    precision: Precision
    source: str | None = None  # the artifact it is made from; None for the export
    fused: bool = False  # carries ONNX Runtime's fused operators (an Attention per layer, ...)
    recipe: Int8Recipe | None = None  # INT8 artifacts: how they are quantized (inference_bench.build.quantize)


@dataclass(frozen=True)
class Variant:
    """One thing a benchmark job times."""

    name: str
    engine: Engine
    precision: Precision  # of its big matrix multiplies: picks its peak and its parity tolerance
    devices: tuple[Device, ...]
    role: Role = "optimized"
    artifact: str | None = None  # ONNX Runtime variants: the artifact they run
    torch_dtype: str | None = None  # PyTorch variants: the torch dtype the model runs in (`torch.<name>`)
    compiled: bool = False  # PyTorch variants: through torch.compile
    cuda_graph: bool = False  # ONNX Runtime variants: replayed from a captured CUDA graph (CUDA only)
    needs_cpu_flags: tuple[str, ...] = ()  # on CPU, one of these flags is required (BF16 matmul support)
    description: str = ""

    @property
    def tolerance_key(self) -> Precision:
        """The `parity.<key>` entry that gates this variant's outputs."""
        return self.precision


#: Every ONNX artifact, in the order they are built.
ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact("onnx-fp32", "export", "fp32"),
        Artifact("onnx-fp16", "fp16", "fp16", source="onnx-fp32"),
        # Fused, then converted to FP16: the order ONNX Runtime and Optimum use.
        Artifact("ort-fp32", "fuse", "fp32", source="onnx-fp32", fused=True),
        Artifact("ort-fp16", "fp16", "fp16", source="ort-fp32", fused=True),
        # Converted to FP16, then fused: the order the project's first description lists.
        Artifact("fp16-ort", "fuse", "fp16", source="onnx-fp16", fused=True),
        # INT8 of the fused graph: the quantizer turns each Attention into a QAttention.
        Artifact("ort-int8", "int8", "int8", source="ort-fp32", fused=True, recipe="dynamic"),
        # INT8 of the export: ONNX Runtime fuses the quantized graph when the session loads.
        Artifact("onnx-int8", "int8", "int8", source="onnx-fp32", recipe="dynamic"),
        Artifact("onnx-int8-static", "int8", "int8", source="onnx-fp32", recipe="static"),
        Artifact("onnx-int8-mixed", "int8", "int8", source="onnx-fp32", recipe="mixed"),
    )
}

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")

#: Every variant, in the order charts and tables show them.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("pytorch", "torch", "fp32", ("cpu", "cuda"), role="baseline", torch_dtype="float32",
                description="PyTorch eager FP32"),
        Variant("pytorch-compile", "torch", "fp32", ("cpu", "cuda"), role="stronger_baseline",
                torch_dtype="float32", compiled=True, description="torch.compile FP32"),
        Variant("pytorch-bf16", "torch", "bf16", ("cpu", "cuda"), role="stronger_baseline", torch_dtype="bfloat16",
                needs_cpu_flags=_BF16_FLAGS, description="PyTorch eager BF16"),
        # CPU FP16 kernels are not a baseline anyone would pick.
        Variant("pytorch-fp16", "torch", "fp16", ("cuda",), role="stronger_baseline", torch_dtype="float16",
                description="PyTorch eager FP16"),
        *(
            Variant(a.name, "onnxruntime", a.precision, ("cpu", "cuda"), artifact=a.name,
                    description=f"ONNX Runtime, {a.name}.onnx")
            for a in ARTIFACTS.values()
        ),
        # The fused FP16 graph, captured once per shape as a CUDA graph and replayed: no kernel launch costs.
        Variant("ort-fp16-cudagraph", "onnxruntime", "fp16", ("cuda",), artifact="ort-fp16", cuda_graph=True,
                description="ONNX Runtime, ort-fp16.onnx replayed from a CUDA graph"),
    )
}


def variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def variant_names(**where: object) -> list[str]:
    """Names of the variants whose fields equal `where` (e.g. `engine="onnxruntime"`), in registry order."""
    return [v.name for v in VARIANTS.values() if all(getattr(v, key) == value for key, value in where.items())]


def artifact_names(stage: Stage | None = None) -> list[str]:
    return [a.name for a in ARTIFACTS.values() if stage is None or a.stage == stage]


def precision_of(variant_name: str) -> str | None:
    """The precision of a known variant; None for a name the registry does not hold (an old summary's)."""
    known = VARIANTS.get(variant_name)
    return known.precision if known else None


def variant_order(names) -> list[str]:
    """`names` sorted as the registry lists them; unknown names last, alphabetically."""
    order = {name: index for index, name in enumerate(VARIANTS)}
    return sorted(set(names), key=lambda name: (order.get(name, len(order)), name))
