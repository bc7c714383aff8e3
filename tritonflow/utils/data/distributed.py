"""tritonflow.utils.data.DistributedSampler: each rank's share of a dataset's indices, epoch by epoch.

Front end stage (data loading for training across processes), with the arithmetic of torch's
DistributedSampler: every rank gets `num_samples` indices; without `drop_last` the index list is
padded (by repeating its start) to a multiple of the number of replicas, with `drop_last` the
tail is cut off; rank r takes every num_replicas-th index starting at r. With `shuffle`, the
order is a permutation drawn from `seed + epoch` (NumPy's PCG64: the same on every rank, a new
one after `set_epoch`), so the shards of one epoch partition the (padded) dataset. The
permutation itself is NumPy's, not torch's randperm: the shards differ from torch's when shuffled.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from tritonflow.errors import DTypeError, ShapeError


class DistributedSampler:
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        if not hasattr(dataset, "__len__"):
            raise DTypeError(f"DistributedSampler: the dataset must have a length (__len__), got "
                             f"{type(dataset).__name__}")
        if num_replicas is None or rank is None:
            from tritonflow.distributed import get_rank, get_world_size
            num_replicas = get_world_size() if num_replicas is None else num_replicas
            rank = get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ShapeError(f"DistributedSampler: num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ShapeError(f"DistributedSampler: invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        n = len(dataset)
        if drop_last and n % self.num_replicas:
            # The largest share every rank can have without repeating an index.
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.Generator(np.random.PCG64(self.seed + self.epoch)).permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The shuffle of the next iteration: call at the start of each epoch, the same on every rank."""
        self.epoch = int(epoch)
