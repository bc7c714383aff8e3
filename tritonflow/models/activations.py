"""tritonflow.models: the activation functions config.json files name (Hugging Face's ACT2FN keys).

Framework stage (models). Only names whose formula is known exactly are accepted; "gelu_new",
"gelu_pytorch_tanh" and "gelu_fast" are all the tanh approximation of GELU (written three ways
in transformers, equal up to rounding).
"""
from __future__ import annotations

from typing import Callable

from tritonflow.nn import functional as F

ACTIVATIONS: dict[str, Callable] = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": F.tanh,
}


def activation(name: str) -> Callable:
    """The function for a config's activation name (configs check the name when they are read)."""
    return ACTIVATIONS[name]
