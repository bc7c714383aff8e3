"""Framework API: softmax and log_softmax (`tritonflow.softmax`, `F.softmax`, `Tensor.softmax`).

Both subtract the row max first, compute half inputs in float32 and round once; a row of -inf gives
zeros (softmax) or -inf (log_softmax), never NaN.
"""
from __future__ import annotations

from tritonflow import dtypes as D
from tritonflow.api.convert import cast, is_tensor
from tritonflow.api.elementwise import exp, isinf, log, where
from tritonflow.api.reduction import amax, sum
from tritonflow.errors import DTypeError
from tritonflow.ops.shapes import normalize_dim
from tritonflow.amp.autocast_mode import autocast_to_float32


def float_tensor(x, name: str):
    """`x` if it is a floating point tensor, else a DTypeError naming the function."""
    if not is_tensor(x):
        raise DTypeError(f"{name}: expected a tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{name}: expected a floating point tensor, got {x.dtype.name}")
    return x


def compute_dtype(x) -> D.DType:
    """The dtype a composite op computes `x` in: float32 for half inputs (rounded once at the end)."""
    return D.float32 if x.dtype.is_low_precision else x.dtype


def _normalizer(x, dim, dtype, name: str) -> tuple:
    """(output dtype, x - row max, exp of that, its row sum with empty rows' 0 replaced by 1)."""
    x = float_tensor(x, name)
    if dtype is not None:
        x = cast(x, dtype)
    out_dtype = x.dtype
    x = cast(x, compute_dtype(x))
    d = normalize_dim(name, dim, x.ndim)
    # The shift only keeps exp() in range and cancels out of the result, so it carries no gradient:
    # differentiating through the max would add a pass counting each row's maxima, forward and back.
    m = amax(x.detach(), d, keepdim=True)
    # A row that is all -inf has max -inf; shifting by 0 keeps exp() at 0 instead of NaN.
    shifted = x - where(isinf(m), 0.0, m)
    e = exp(shifted)
    s = sum(e, d, keepdim=True)
    # A fully masked row sums to 0: dividing by (or taking the log of) 1 keeps it at 0 (or -inf).
    return out_dtype, shifted, e, where(s == 0, 1.0, s)


@autocast_to_float32
def softmax(x, dim=-1, dtype=None):
    out_dtype, _, e, s = _normalizer(x, dim, dtype, "softmax")
    return cast(e / s, out_dtype)


@autocast_to_float32
def log_softmax(x, dim=-1, dtype=None):
    out_dtype, shifted, _, s = _normalizer(x, dim, dtype, "log_softmax")
    return cast(shifted - log(s), out_dtype)
