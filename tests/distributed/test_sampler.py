"""DistributedSampler against torch's (torch.utils.data.DistributedSampler): the same shards, padding
and dropping; shuffled, the same shards once both draw the same permutation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler as TorchSampler

import tritonflow as tf
from tritonflow.utils.data import DistributedSampler

CASES = [(n, replicas, drop) for n in (0, 1, 5, 7, 8, 10, 13) for replicas in (1, 2, 3, 4) for drop in (False, True)]


@pytest.mark.parametrize("n, replicas, drop_last", CASES)
def test_unshuffled_shards_equal_torchs(n, replicas, drop_last):
    data = list(range(n))
    for rank in range(replicas):
        ours = DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("n, replicas, drop_last", [c for c in CASES if c[0] > 0])
def test_shuffled_shards_equal_torchs_given_the_same_permutation(monkeypatch, n, replicas, drop_last):
    data = list(range(n))
    for epoch in (0, 3):
        perm = np.random.Generator(np.random.PCG64(11 + epoch)).permutation(n)
        monkeypatch.setattr(torch, "randperm", lambda size, generator=None, perm=perm: torch.from_numpy(perm.copy()))
        for rank in range(replicas):
            ours = DistributedSampler(data, replicas, rank, shuffle=True, seed=11, drop_last=drop_last)
            theirs = TorchSampler(data, replicas, rank, shuffle=True, seed=11, drop_last=drop_last)
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            assert list(ours) == list(theirs)


def test_epochs_shuffle_deterministically_and_shards_partition_the_data():
    data = list(range(20))
    shards = lambda epoch: [list(_at(DistributedSampler(data, 4, r, seed=5), epoch)) for r in range(4)]  # noqa: E731
    first, again, second = shards(0), shards(0), shards(1)
    assert first == again and first != second
    for epoch in (first, second):
        assert sorted(i for shard in epoch for i in shard) == data


def _at(sampler, epoch):
    sampler.set_epoch(epoch)
    return sampler


def test_bad_arguments_are_named():
    with pytest.raises(tf.ShapeError, match=r"invalid rank 2, rank should be in the interval \[0, 1\]"):
        DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(tf.DTypeError, match="must have a length"):
        DistributedSampler(iter(range(4)), num_replicas=2, rank=0)
