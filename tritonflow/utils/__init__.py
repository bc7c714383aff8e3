"""Front end: utilities around training (as `torch.utils`): data loading, logging, checkpointing."""
