"""Benchmark pipeline for Transformer encoder inference: export, optimize, convert, measure, report.

The package mirrors the workflow's rule files, one subpackage per stage, and its imports point one way
(tests/test_architecture.py keeps them so):

    core (this folder's modules)  variants, layout, hardware, models, artifacts, errors, config checks
    inputs/                       the corpus, tokenizers and feeds every stage reads
    accuracy/                     rules/accuracy.smk: task-level accuracy against PyTorch FP32
    build/                        rules/build.smk: reference outputs, export, fusion, FP16, INT8, parity
    measure/                      rules/measure.smk: processes in blocks, stopping, roofs, intervals
    report/                       rules/report.smk: summaries, tables, charts, README, regression

A part may import the parts above it in this list, never one below it. The variants live in `variants`, the
file layout in `layout`, the machine's facts in `hardware`. From Python,
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
