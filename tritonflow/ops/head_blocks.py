"""Op table: attention's NumPy references run over blocks of heads.

A reference computes the L x S scores of every head at once; at 2x4x256x256 float32 that is 2 MB
per temporary, fresh memory for each (page faults cost more than the arithmetic on it). Over
blocks of heads sized for the CPU's mid-level cache, the temporaries of one block are reused by the
allocator for the next. Every head is computed by the same NumPy calls either way (matmul runs one
BLAS product per matrix; the reductions are per row), so blocked and whole results are identical.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

# Bytes of one block's score matrices (heads x L x S of the compute dtype).
SCORE_BLOCK_BYTES = 512 * 1024


def over_head_blocks(reference: Callable) -> Callable:
    """`reference(*arrays, **attrs)` run a block of heads at a time when every array either has the
    queries' batch dims or has no batch dims (read whole), and no dropout draws depend on the
    position; else at once."""
    @functools.wraps(reference)
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
