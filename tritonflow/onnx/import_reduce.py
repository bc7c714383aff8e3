"""ONNX import stage: reductions, arg-reductions, CumSum and the softmax family.

ONNX reductions keep the input's element type (tritonflow sums integers into int64: cast back),
reduce every axis when `axes` is empty unless noop_with_empty_axes, and give the reduction's
identity (0, 1, -inf, inf) over an empty set.
"""
from __future__ import annotations

import math

import numpy as np

import tritonflow.api as T
import tritonflow.nn.functional as F
from tritonflow import dtypes as D
from tritonflow.onnx.import_registry import handles

_EMPTY_VALUE = {"ReduceSum": 0.0, "ReduceProd": 1.0, "ReduceMax": -math.inf, "ReduceMin": math.inf,
                "ReduceL1": 0.0, "ReduceL2": 0.0, "ReduceSumSquare": 0.0, "ReduceLogSum": -math.inf,
                "ReduceLogSumExp": -math.inf, "ReduceMean": math.nan}


def _reduce_axes(call, x) -> tuple | None:
    """The normalized axes to reduce, or None for "reduce nothing" (noop_with_empty_axes)."""
    axes_from_input = call.opset >= (13 if call.op_type == "ReduceSum" else 18)
    axes = call.ints(1, "axes") if axes_from_input else call.attr("axes")
    if not axes:
        if call.attr("noop_with_empty_axes", 0):
            return None
        return tuple(range(x.ndim))
    return tuple(sorted({a % max(x.ndim, 1) for a in axes}))


def _reduce(op_type: str, x, dims: tuple, keepdim: bool):
    if op_type == "ReduceSum":
        return T.sum(x, dims, keepdim)
    if op_type == "ReduceMean":
        return T.mean(x if x.dtype.is_floating_point else T.cast(x, D.float64), dims, keepdim)
    if op_type == "ReduceProd":
        return T.prod(x, dims, keepdim)
    if op_type == "ReduceMax":
        return T.amax(x, dims, keepdim)
    if op_type == "ReduceMin":
        return T.amin(x, dims, keepdim)
    if op_type == "ReduceL1":
        return T.sum(T.abs(x), dims, keepdim)
    if op_type == "ReduceSumSquare":
        return T.sum(x * x, dims, keepdim)
    if op_type == "ReduceL2":
        return T.sqrt(T.sum(x * x, dims, keepdim))
    if op_type == "ReduceLogSum":
        return T.log(T.sum(x, dims, keepdim))
    return T.logsumexp(x, dims, keepdim)


@handles("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
def reduce(call):
    x = call.tensor(0)
    dims = _reduce_axes(call, x)
    if dims is None:
        return x
    keepdim = bool(call.attr("keepdims", 1))
    if x.ndim == 0:
        return x
    if any(x.shape[d] == 0 for d in dims):
        shape = tuple(1 if i in dims else d for i, d in enumerate(x.shape) if keepdim or i not in dims)
        value = _EMPTY_VALUE[call.op_type]
        if not x.dtype.is_floating_point and not math.isfinite(value):
            info = np.iinfo(x.dtype.np) if x.dtype.is_integer else None
            value = (info.min if value < 0 else info.max) if info is not None else 0
        return T.full(shape, value, dtype=x.dtype)
    result = _reduce(call.op_type, x, dims, keepdim)
    return result if result.dtype is x.dtype else T.cast(result, x.dtype)


@handles("ArgMax", "ArgMin")
def arg_reduce(call):
    x = call.tensor(0)
    axis = call.attr("axis", 0) % max(x.ndim, 1)
    keepdim = bool(call.attr("keepdims", 1))
    fn = T.argmax if call.op_type == "ArgMax" else T.argmin
    if not call.attr("select_last_index", 0):
        return fn(x, axis, keepdim)
    # The last of equal extremes: the first one of the flipped tensor, counted from the end.
    return (x.shape[axis] - 1) - fn(T.flip(x, (axis,)), axis, keepdim)


@handles("CumSum")
def cumsum(call):
    x = call.tensor(0)
    axis = int(np.asarray(call.static(1, "axis")).reshape(-1)[0]) % max(x.ndim, 1)
    reverse = call.attr("reverse", 0)
    y = T.flip(x, (axis,)) if reverse else x
    total = T.cumsum(y, axis)
    if call.attr("exclusive", 0):
        total = total - (y if y.dtype is total.dtype else T.cast(y, total.dtype))
    total = T.flip(total, (axis,)) if reverse else total
    return total if total.dtype is x.dtype else T.cast(total, x.dtype)


def _softmax_like(call, fn):
    x = call.tensor(0)
    if call.opset >= 13:
        return fn(x, call.attr("axis", -1) % max(x.ndim, 1))
    # Before opset 13 the input is viewed as 2-D, [prod(shape[:axis]), prod(shape[axis:])].
    axis = call.attr("axis", 1) % max(x.ndim, 1)
    flat = T.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))
    return T.reshape(fn(flat, 1), tuple(x.shape))


def _hardmax(x, axis: int):
    hot = T.iota(tuple(x.shape), axis) == T.argmax(x, axis, True)
    return T.cast(hot, x.dtype)


@handles("Softmax")
def softmax(call):
    return _softmax_like(call, lambda x, axis: F.softmax(x, axis))


@handles("LogSoftmax")
def log_softmax(call):
    return _softmax_like(call, lambda x, axis: F.log_softmax(x, axis))


@handles("Hardmax")
def hardmax(call):
    return _softmax_like(call, _hardmax)
