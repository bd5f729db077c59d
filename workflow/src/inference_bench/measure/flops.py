"""Floating-point work of one encoder forward pass, from the model's own architecture facts.

The pass is a list of matrix multiplies (`model_gemms`): the FLOP count sums them, and the calibration times
the same shapes to find how fast this machine runs them (inference_bench.measure.calibration).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from inference_bench.models import ArchitectureFacts


@dataclass(frozen=True)
class Gemm:
    """One matrix multiply of the forward pass: `batch` products of (m x k) by (k x n), done `count` times
    per pass (once per layer, or four times per layer for the Q, K, V and output projections). `weight`:
    the right-hand side is a weight of the model (a constant the engine may pre-pack and quantize), not an
    activation (the attention products multiply two activations)."""

    name: str
    batch: int
    m: int
    k: int
    n: int
    weight: bool
    count: int = 1

    @property
    def flops(self) -> int:
        """FLOPs of one call (a multiply-add counts two)."""
        return 2 * self.batch * self.m * self.k * self.n

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_gemms(facts: ArchitectureFacts, batch_size: int, sequence_length: int) -> list[Gemm]:
    """The matrix multiplies of a forward pass over `batch_size` sequences of `sequence_length` tokens.

    Per layer, with T = batch x sequence tokens, H hidden, I inner, h heads of d = H / h: the Q, K, V and
    output projections (T x H by H x H, four of them), the feed-forward pair (T x H by H x I, T x I by
    I x H), the attention scores (B h products of S x d by d x S) and their weighted sum (B h products of
    S x S by S x d).
    """
    hidden, inner, heads, layers = facts.hidden_size, facts.intermediate_size, facts.num_heads, facts.num_layers
    tokens, seq, head_dim = batch_size * sequence_length, sequence_length, facts.hidden_size // facts.num_heads
    return [
        Gemm("projection", 1, tokens, hidden, hidden, weight=True, count=4 * layers),
        Gemm("feed_forward_in", 1, tokens, hidden, inner, weight=True, count=layers),
        Gemm("feed_forward_out", 1, tokens, inner, hidden, weight=True, count=layers),
        Gemm("attention_scores", batch_size * heads, seq, head_dim, seq, weight=False, count=layers),
        Gemm("attention_context", batch_size * heads, seq, seq, head_dim, weight=False, count=layers),
    ]


def encoder_flops(facts: ArchitectureFacts, batch_size: int, sequence_length: int) -> int:
    """Matrix-multiply FLOPs (a multiply-add counts two) of a forward pass over `batch_size` sequences.

    Per layer: Q, K, V and output projections (4 H² per token), attention scores and their weighted sum
    (2 S H per token), and the feed-forward pair (2 H I per token). Layer norms, softmax, GELU and the
    embedding lookups are below 1% of this for BERT-sized models and are left out, as in the usual
    transformer FLOP counts.
    """
    return sum(gemm.flops * gemm.count for gemm in model_gemms(facts, batch_size, sequence_length))
