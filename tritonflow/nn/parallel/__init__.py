"""tritonflow.nn.parallel: data-parallel training across processes (DistributedDataParallel)."""
from tritonflow.nn.parallel.distributed import DistributedDataParallel  # noqa: F401

__all__ = ["DistributedDataParallel"]
