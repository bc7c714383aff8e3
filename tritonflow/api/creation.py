"""Framework API: creating tensors — constants, ranges and fills (random numbers: random.py)."""
from __future__ import annotations

import math

import numpy as np

from tritonflow import dtypes as D
from tritonflow.api.convert import cast, to
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ops import creation as C


def _shape(shape, op: str = "full") -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = []
    for d in shape:
        if isinstance(d, (bool, float)) or not (isinstance(d, (int, np.integer)) or hasattr(d, "free_symbols")):
            raise ShapeError(f"{op}: shape entries must be integers, got {d!r} in {tuple(shape)}")
        if isinstance(d, (int, np.integer)) and d < 0:
            raise ShapeError(f"{op}: negative dimension {d} in shape {tuple(shape)}")
        out.append(int(d) if isinstance(d, (int, np.integer)) else d)
    return tuple(out)


def _place(t, device, requires_grad):
    if device is not None and str(device) != "cpu" and t._node is None:
        t = to(t, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def full(shape, fill_value, *, dtype=None, device=None, requires_grad=False):
    shape = _shape((shape,) if isinstance(shape, int) else (tuple(shape),))
    dtype = D.as_dtype(dtype) if dtype is not None else D.dtype_of_scalar(fill_value)
    value = fill_value
    if dtype.is_integer and isinstance(value, float) and not math.isfinite(value):
        raise DTypeError(f"full: cannot fill an {dtype.name} tensor with {value}")
    t = apply(C.FULL, [], {"shape": shape, "value": value, "dtype": dtype})
    return _place(t, device, requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return full(_shape(shape, "zeros"), 0, dtype=dtype or D.DEFAULT_FLOAT, device=device, requires_grad=requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return full(_shape(shape, "ones"), 1, dtype=dtype or D.DEFAULT_FLOAT, device=device, requires_grad=requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad=False):
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(fn):
    def like(x, *args, dtype=None, device=None, requires_grad=False, **kwargs):
        return fn(tuple(x.shape), *args, dtype=dtype or x.dtype, device=device or x.device,
                  requires_grad=requires_grad, **kwargs)
    return like


def _full_shape_first(shape, fill_value, dtype=None, device=None, requires_grad=False):
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


zeros_like = _like(lambda shape, **k: zeros(shape, **k))
ones_like = _like(lambda shape, **k: ones(shape, **k))
empty_like = zeros_like
full_like = _like(_full_shape_first)


def iota(shape, dim, *, dtype=D.int64, device=None):
    t = apply(C.IOTA, [], {"shape": tuple(shape), "dim": dim, "dtype": D.as_dtype(dtype)})
    return _place(t, device, False)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ShapeError("arange: step must be non-zero")
    n = max(0, math.ceil((end - start) / step))
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = D.DEFAULT_FLOAT if is_float else D.int64
    dtype = D.as_dtype(dtype)
    if dtype.is_integer and all(isinstance(v, int) for v in (start, step)):
        out = iota((n,), 0, dtype=dtype)
        if step != 1:
            out = out * step
        if start != 0:
            out = out + start
    else:
        out = cast(iota((n,), 0, dtype=D.float64 if dtype is D.float64 else D.float32), dtype
                   if dtype.is_floating_point else D.float64) * step + start
        out = cast(out, dtype)
    return _place(out, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    dtype = D.as_dtype(dtype) if dtype is not None else D.DEFAULT_FLOAT
    if steps < 0:
        raise ShapeError(f"linspace: number of steps must be non-negative, got {steps}")
    if steps == 1:
        return full((1,), start, dtype=dtype, device=device, requires_grad=requires_grad)
    step = (end - start) / max(steps - 1, 1)
    idx = cast(iota((steps,), 0), D.float64 if dtype is D.float64 else D.float32)
    return _place(cast(idx * step + start, dtype), device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    out = cast(iota((n, m), 0) == iota((n, m), 1), dtype or D.DEFAULT_FLOAT)
    return _place(out, device, requires_grad)
