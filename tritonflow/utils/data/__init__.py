"""tritonflow.utils.data: feeding training data (as torch.utils.data): the distributed sampler."""
from tritonflow.utils.data.distributed import DistributedSampler  # noqa: F401

__all__ = ["DistributedSampler"]
