"""Benchmark pipeline for Transformer encoder inference: export, optimize, convert, measure, report.

The variants live in `variants`, the file layout in `layout`, the machine's facts in `hardware`.
"""
