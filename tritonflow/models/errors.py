"""tritonflow.models: the errors a Hugging Face checkpoint directory can raise.

Framework stage (model loading). Both name the file, and the field or tensor, that is wrong, so
a user can fix the checkpoint or the call; neither is raised after anything was written into a
model.
"""
from __future__ import annotations

from tritonflow.errors import TritonflowError
from tritonflow.serialization import SerializationError


class ConfigError(TritonflowError, ValueError):
    """config.json is unreadable, lacks a required field, has an unknown one, or a bad value."""


class CheckpointError(SerializationError):
    """A weight file is corrupt or truncated, or its tensors do not fit the model (missing,
    unexpected, wrongly shaped or of a non-floating dtype)."""
