"""Front end: utilities around training (as `torch.utils`): data loading, logging, checkpointing."""

from tritonflow.utils import checkpoint  # noqa: F401,E402  (callable: checkpoint(fn, *args))
