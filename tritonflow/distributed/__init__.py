"""tritonflow.distributed: training across processes on torch.distributed (gloo on CPU, NCCL on GPU).

    import tritonflow.distributed as dist
    dist.init_process_group()                 # under `torchrun --nproc_per_node=N script.py`
    dist.all_reduce(t)                        # t now holds the sum over all ranks

Front end stage. The process group (process_group.py), collectives on tritonflow tensors
(collectives.py) and their host side on NumPy / torch storage (host.py). Data-parallel training
is `tritonflow.nn.parallel.DistributedDataParallel`; optimizer state sharding is
`tritonflow.distributed.optim.ZeroRedundancyOptimizer`.
"""
from tritonflow.distributed.collectives import (ReduceOp, Work, all_gather, all_gather_into_tensor,  # noqa: F401
                                                all_reduce, broadcast, reduce_scatter, reduce_scatter_tensor)
from tritonflow.distributed.process_group import (ProcessGroup, all_gather_object, barrier,  # noqa: F401
                                                  destroy_process_group, get_backend, get_rank, get_world_size,
                                                  init_process_group, is_available, is_initialized, new_group)
from tritonflow.errors import DistributedError  # noqa: F401

__all__ = ["init_process_group", "destroy_process_group", "is_available", "is_initialized", "get_rank",
           "get_world_size", "get_backend", "new_group", "barrier", "all_gather_object", "all_reduce", "broadcast",
           "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "ReduceOp", "Work",
           "ProcessGroup", "DistributedError"]
