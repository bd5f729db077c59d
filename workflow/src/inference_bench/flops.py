"""Floating-point work of one encoder forward pass, from the model's own architecture facts."""

from __future__ import annotations

from inference_bench.models import ArchitectureFacts


def encoder_flops(facts: ArchitectureFacts, batch_size: int, sequence_length: int) -> int:
    """Matrix-multiply FLOPs (a multiply-add counts two) of a forward pass over `batch_size` sequences.

    Per layer: Q, K, V and output projections (4 H² per token), attention scores and their weighted sum
    (2 S H per token), and the feed-forward pair (2 H I per token). Layer norms, softmax, GELU and the
    embedding lookups are below 1% of this for BERT-sized models and are left out, as in the usual
    transformer FLOP counts.
    """
    hidden, inner, seq = facts.hidden_size, facts.intermediate_size, sequence_length
    per_token = 4 * hidden * hidden + 2 * seq * hidden + 2 * hidden * inner
    return 2 * facts.num_layers * batch_size * seq * per_token
