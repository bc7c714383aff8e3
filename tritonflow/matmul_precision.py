"""Framework stage: the float32 matmul precision switch (`tritonflow.set_matmul_precision`).

"highest" (the default, as in PyTorch) computes float32 products in full IEEE float32;
"high" lets the matmul and attention templates use TensorFloat-32 tensor cores (10-bit
mantissa inputs, float32 accumulation), several times faster on Ampere and later GPUs.
"medium" is accepted as PyTorch spells it and means the same as "high" here.

The setting is read when a template kernel launches (it is a compile-time constant of the
kernel, so each value gets its own specialization), so changing it takes effect on the next
call of an already compiled function. The NumPy backend always computes in full precision.
"""
from __future__ import annotations

from tritonflow.errors import UnsupportedError

PRECISIONS = ("highest", "high", "medium")
_precision = "highest"


def set_matmul_precision(precision: str) -> None:
    """Choose float32 matmul precision: "highest" (IEEE float32) or "high"/"medium" (tf32)."""
    global _precision
    if precision not in PRECISIONS:
        raise UnsupportedError(f"set_matmul_precision: precision must be one of {', '.join(PRECISIONS)}, "
                               f"got {precision!r}")
    _precision = precision


def get_matmul_precision() -> str:
    return _precision


def triton_input_precision() -> str:
    """How `tl.dot` spells the current setting for float32 operands."""
    return "ieee" if _precision == "highest" else "tf32"
