"""Benchmark pipeline for Transformer encoder inference: export, optimize, convert, measure, report.

The variants live in `variants`, the file layout in `layout`, the machine's facts in `hardware`. From Python,
`inference_bench.TransformerOptimizationToolkit` drives the same workflow (inference_bench.toolkit); it is
imported on first use, so the pipeline's jobs do not pay for Snakemake's API.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TransformerOptimizationToolkit"]


def __getattr__(name: str) -> Any:
    if name == "TransformerOptimizationToolkit":
        from inference_bench.toolkit import TransformerOptimizationToolkit

        return TransformerOptimizationToolkit
    raise AttributeError(f"module 'inference_bench' has no attribute {name!r}")
