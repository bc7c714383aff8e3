"""tritonflow.nn.parallel: which gradients travel together — DDP's bucket assignment.

Front end stage (data-parallel training). The rule is torch's (`_compute_bucket_assignment_by_size`)
applied, as torch's DDP applies it once it has seen a backward, in the order gradients become
ready — taken here as the reverse of `module.parameters()`: tensors are grouped by dtype and
device (one flat buffer each); a group's bucket closes once it holds at least its limit in bytes;
each group's first bucket has the first limit (1 MiB when `bucket_cap_mb` is left at its default,
so the first all-reduce starts early in the backward), later ones `bucket_cap_mb`; buckets are
ordered by the first tensor they hold.
"""
from __future__ import annotations

DEFAULT_BUCKET_CAP_MB = 25.0
FIRST_BUCKET_BYTES = 1024 * 1024


def nbytes(tensor) -> int:
    size = 1
    for d in tensor.shape:
        size *= int(d)
    return size * tensor.dtype.itemsize


def bucket_limits(bucket_cap_mb: float | None) -> list:
    """[first bucket's limit, every later one's] in bytes, as torch's DDP chooses them."""
    cap = int((DEFAULT_BUCKET_CAP_MB if bucket_cap_mb is None else float(bucket_cap_mb)) * 1024 * 1024)
    return [FIRST_BUCKET_BYTES if bucket_cap_mb is None else cap, cap]


def assign_by_size(tensors: list, limits: list) -> list[list[int]]:
    """Buckets of indices into `tensors` (taken in the given order)."""
    open_buckets: dict = {}     # (dtype, device) -> [indices, bytes, how many buckets it closed]
    closed: list[list[int]] = []
    for index, t in enumerate(tensors):
        entry = open_buckets.setdefault((t.dtype.name, t.device), [[], 0, 0])
        entry[0].append(index)
        entry[1] += nbytes(t)
        if entry[1] >= limits[min(entry[2], len(limits) - 1)]:
            closed.append(entry[0])
            entry[0], entry[1], entry[2] = [], 0, entry[2] + 1
    closed.extend(entry[0] for entry in open_buckets.values() if entry[0])
    return sorted(closed, key=lambda bucket: bucket[0])


def assign_buckets(tensors: list, limits: list, reverse: bool = True) -> list[list[int]]:
    """Buckets of indices into `tensors`, in the order they are reduced (`reverse`: ready order is
    the reverse of `tensors`)."""
    order = list(range(len(tensors) - 1, -1, -1)) if reverse else list(range(len(tensors)))
    return [[order[i] for i in bucket] for bucket in assign_by_size([tensors[i] for i in order], limits)]
