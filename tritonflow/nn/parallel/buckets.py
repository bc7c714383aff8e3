"""tritonflow.nn.parallel: which gradients travel together — DDP's bucket assignment.

Front end stage (data-parallel training). As torch's DistributedDataParallel does: parameters are
taken in reverse order of `module.parameters()` (roughly the order their gradients become ready
in the backward), grouped by dtype and device (one flat buffer each), and a bucket is closed once
it holds at least its cap in bytes; the first bucket is capped at 1 MiB so the first all-reduce
starts early in the backward, the others at `bucket_cap_mb`.
"""
from __future__ import annotations

DEFAULT_BUCKET_CAP_MB = 25.0
FIRST_BUCKET_BYTES = 1024 * 1024


def nbytes(tensor) -> int:
    size = 1
    for d in tensor.shape:
        size *= int(d)
    return size * tensor.dtype.itemsize


def assign_buckets(tensors: list, cap_bytes: float, first_cap_bytes: float | None = None,
                   reverse: bool = True) -> list[list[int]]:
    """Buckets as lists of indices into `tensors`, in the order they are to be reduced."""
    first_cap = cap_bytes if first_cap_bytes is None else min(first_cap_bytes, cap_bytes)
    order = range(len(tensors) - 1, -1, -1) if reverse else range(len(tensors))
    open_buckets: dict = {}     # (dtype, device) -> (indices, bytes)
    closed: list[list[int]] = []
    for index in order:
        t = tensors[index]
        key = (t.dtype.name, t.device)
        indices, size = open_buckets.get(key, ([], 0))
        indices.append(index)
        size += nbytes(t)
        limit = first_cap if not closed else cap_bytes
        if size >= limit:
            closed.append(indices)
            open_buckets.pop(key, None)
        else:
            open_buckets[key] = (indices, size)
    closed.extend(indices for indices, _ in open_buckets.values())
    return closed
