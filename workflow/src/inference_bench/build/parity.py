"""How far a variant's outputs are from PyTorch FP32, on the tokens that are not padding."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from inference_bench.errors import PipelineError


class ParityError(PipelineError, RuntimeError):
    """A variant's outputs diverge from PyTorch FP32 beyond the configured tolerance."""


@dataclass(frozen=True)
class Tolerance:
    """Largest allowed max-abs difference (None: not checked) and smallest per-token cosine."""

    max_abs_diff: float | None
    min_cosine: float

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> "Tolerance":
        return cls(max_abs_diff=entry.get("max_abs_diff"), min_cosine=float(entry["min_cosine"]))


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float
    mean_abs_diff: float
    min_token_cosine: float
    mean_token_cosine: float
    nonfinite_values: int
    compared_tokens: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def violations(self, tolerance: Tolerance) -> list[str]:
        problems = []
        if self.nonfinite_values:
            problems.append(f"{self.nonfinite_values} NaN/Inf values in the output")
        if tolerance.max_abs_diff is not None and not self.max_abs_diff <= tolerance.max_abs_diff:
            problems.append(f"max abs diff {self.max_abs_diff:.3g} > {tolerance.max_abs_diff:.3g} allowed")
        if not self.min_token_cosine >= tolerance.min_cosine:
            problems.append(f"min per-token cosine {self.min_token_cosine:.6f} < {tolerance.min_cosine} required")
        return problems

    def check(self, tolerance: Tolerance, what: str) -> None:
        problems = self.violations(tolerance)
        if problems:
            raise ParityError(f"{what} diverges from PyTorch FP32: " + "; ".join(problems))


def compare_hidden_states(reference: np.ndarray, candidate: np.ndarray, attention_mask: np.ndarray) -> ParityReport:
    """Compare (batch, sequence, hidden) outputs at the positions where the mask is 1."""
    if reference.shape != candidate.shape:
        raise ParityError(f"output shape {candidate.shape} differs from PyTorch's {reference.shape}")
    keep = attention_mask.astype(bool)
    ref = reference[keep].astype(np.float64)
    cand = candidate[keep].astype(np.float64)
    nonfinite = int(np.size(cand) - np.count_nonzero(np.isfinite(cand)))
    if nonfinite:
        return ParityReport(math.inf, math.inf, -1.0, -1.0, nonfinite, int(keep.sum()))
    diff = np.abs(ref - cand)
    norms = np.linalg.norm(ref, axis=-1) * np.linalg.norm(cand, axis=-1)
    cosines = np.sum(ref * cand, axis=-1) / np.maximum(norms, np.finfo(np.float64).tiny)
    return ParityReport(
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        min_token_cosine=float(cosines.min()),
        mean_token_cosine=float(cosines.mean()),
        nonfinite_values=0,
        compared_tokens=int(keep.sum()),
    )


def parity_of_onnx(
    onnx_path: str | Path, reference_path: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)
) -> ParityReport:
    """An ONNX file's outputs on the reference inputs, in ONNX Runtime, against the PyTorch FP32 reference."""
    from inference_bench.build.ort_session import make_session, run_once
    from inference_bench.build.reference import load_reference

    feeds, reference = load_reference(reference_path)
    session = make_session(onnx_path, providers=providers)
    output = run_once(session, feeds)
    return compare_hidden_states(reference, np.asarray(output, dtype=np.float32), feeds["attention_mask"])
