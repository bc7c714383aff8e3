"""tritonflow.distributed.optim: optimizers for training across processes (ZeRO stage 1 state sharding)."""
from tritonflow.distributed.optim.zero_redundancy_optimizer import (ZeroRedundancyOptimizer,  # noqa: F401
                                                                    optimizer_state_bytes)

__all__ = ["ZeroRedundancyOptimizer", "optimizer_state_bytes"]
