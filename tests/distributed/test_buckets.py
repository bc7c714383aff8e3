"""DDP's bucket assignment against torch's own (torch.distributed._compute_bucket_assignment_by_size)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist

import tritonflow as tf
from tritonflow.nn.parallel.buckets import assign_buckets, assign_by_size, bucket_limits


def _cases():
    rng = np.random.default_rng(0)
    for case in range(24):
        count = int(rng.integers(1, 14))
        sizes = rng.choice([1, 7, 1000, 40_000, 200_000, 300_000, 700_000], size=count)
        dtypes = rng.choice(["float32", "float64", "float16"], size=count) if case % 2 else ["float32"] * count
        yield pytest.param(list(zip(sizes.tolist(), list(dtypes))), id=f"case{case}")


@pytest.mark.parametrize("tensors", list(_cases()))
@pytest.mark.parametrize("cap_mb", [None, 0.5, 2.0])
def test_same_buckets_as_torch(tensors, cap_mb):
    ours = [tf.zeros((n,), dtype=dtype) for n, dtype in tensors]
    theirs = [torch.zeros(n, dtype=getattr(torch, dtype)) for n, dtype in tensors]
    limits = bucket_limits(cap_mb)
    want, _ = torch_dist._compute_bucket_assignment_by_size(theirs, limits, [False] * len(theirs))
    assert assign_by_size(ours, limits) == [list(b) for b in want]
    # In ready order (reversed parameters), mapped back to parameter indices.
    reversed_want, _ = torch_dist._compute_bucket_assignment_by_size(theirs[::-1], limits, [False] * len(theirs))
    n = len(tensors)
    assert assign_buckets(ours, limits) == [[n - 1 - i for i in b] for b in reversed_want]


def test_default_limits_are_torchs():
    assert bucket_limits(None) == [torch_dist._DEFAULT_FIRST_BUCKET_BYTES, 25 * 1024 * 1024]
    assert bucket_limits(4) == [4 * 1024 * 1024] * 2
