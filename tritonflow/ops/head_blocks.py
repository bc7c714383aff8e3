"""Op table: attention's NumPy references run blockwise — over blocks of heads, and a causal
attention over blocks of queries that skip the keys no query of the block may see.

A reference computes the L x S scores of every head at once; at 2x4x256x256 float32 that is 2 MB
per temporary, fresh memory for each. Over blocks of heads sized for the CPU's mid-level cache
the temporaries of one block are reused by the allocator for the next; every head is computed by
the same NumPy calls either way (matmul runs one BLAS product per matrix, the reductions are per
row), so head blocks change no bit.

A causal query i sees keys 0..i only (the op's top-left alignment): for queries i0..i1-1 the
scores of keys i1.. are all masked. Their block is computed against keys 0..i1-1 alone, skipping
about half of a causal attention's products and exponentials. A masked score contributes exactly 0
to each row's max, sum and products, so the results are the same numbers summed over fewer
zeros: equal up to the order of additions (and the key gradients, a sum over every query, are
added block by block). Dropout draws depend on each score's position, so a causal attention with
dropout runs whole.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

# Bytes of one head block's score matrices (heads x L x S of the compute dtype).
SCORE_BLOCK_BYTES = 512 * 1024
# Queries per causal block: smaller blocks skip more masked scores but pay NumPy's per-call cost.
# Measured on the 2-core EPYC: 4 heads x 1024 queries, forward 43 -> 21 ms and key gradients 90 ->
# 49 ms with blocks of 256 (128 the same); at 256 queries, blocks of 64 were slower than none.
QUERY_BLOCK = 256

# How a reference's result is laid out (for the causal query blocks):
QUERY_ROWS = "query rows"      # [..., L, X]: one row per query (attention, delta, dq)
QUERY_VECTOR = "query vector"  # [..., L]: one value per query (lse)
KEY_ROWS = "key rows"          # [..., S, X]: one row per key, summed over the queries (dkv)
# Inputs from position 3 on (g, the statistics) have one row per query, like q; k and v per key.


def blockwise(reference: Callable, layout: str) -> Callable:
    """`reference(*arrays, scale, is_causal, mask, dropout_p)` run over blocks of heads, each over
    blocks of causal queries (see the module docstring)."""
    by_queries = _over_causal_query_blocks(reference, layout)
    return functools.wraps(reference)(_over_head_blocks(by_queries))


def _over_head_blocks(reference: Callable) -> Callable:
    """A block of heads at a time when every array either has the queries' batch dims or has no
    batch dims (read whole), and no dropout draws depend on the position; else at once."""
    def run(*arrays, **attrs):
        q, k = arrays[0], arrays[1]
        batch = q.shape[:-2]
        if attrs.get("dropout_p", 0.0) > 0 or not batch or \
                any(a.ndim != 2 and a.shape[:-2] != batch for a in arrays):
            return reference(*arrays, **attrs)
        heads = int(np.prod(batch))
        per_head = q.shape[-2] * k.shape[-2] * max(q.dtype.itemsize, 4)
        block = max(1, SCORE_BLOCK_BYTES // per_head)
        if block >= heads:
            return reference(*arrays, **attrs)
        flat = [a if a.ndim == 2 else a.reshape((heads,) + a.shape[-2:]) for a in arrays]
        out = None
        for start in range(0, heads, block):
            part = reference(*[a if a.ndim == 2 else a[start:start + block] for a in flat], **attrs)
            if out is None:
                out = np.empty((heads,) + part.shape[1:], part.dtype)
            out[start:start + block] = part
        return out.reshape(batch + out.shape[1:])
    return run


def _over_causal_query_blocks(reference: Callable, layout: str) -> Callable:
    def run(*arrays, scale, is_causal=False, mask="none", dropout_p=0.0):
        attrs = {"scale": scale, "is_causal": is_causal, "mask": mask, "dropout_p": dropout_p}
        L, S = arrays[0].shape[-2], arrays[1].shape[-2]
        if not is_causal or dropout_p > 0 or L <= QUERY_BLOCK or S == 0:
            return reference(*arrays, **attrs)
        out = None
        for first in range(0, L, QUERY_BLOCK):
            last = min(L, first + QUERY_BLOCK)
            keys = min(S, last)              # query last-1 sees keys 0..last-1
            parts = [a[..., first:last, :] if i == 0 or i >= 3 else a[..., :keys, :] for i, a in enumerate(arrays)]
            part = reference(*parts, **attrs, first_query=first)
            if layout == KEY_ROWS:
                if out is None:
                    out = np.zeros(part.shape[:-2] + (S, part.shape[-1]), part.dtype)
                out[..., :keys, :] += part
            elif layout == QUERY_VECTOR:
                if out is None:
                    out = np.empty(part.shape[:-1] + (L,), part.dtype)
                out[..., first:last] = part
            else:
                if out is None:
                    out = np.empty(part.shape[:-2] + (L, part.shape[-1]), part.dtype)
                out[..., first:last, :] = part
        return out
    return run
