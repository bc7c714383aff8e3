"""Op table: reductions (sum, prod, max, min, argmax, argmin) and the cumulative sum scan.

Attributes: `dims` (sorted tuple of non-negative dims) and `keepdim`. float16/bfloat16 accumulate
in float32; bool and integer sums accumulate in int64, as PyTorch does.
"""
from __future__ import annotations

import math

import numpy as np

from tritonflow.ops.lazy_api import T
from tritonflow import dtypes as D
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.codegen_info import ReductionLowering
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.samples import random_array
from tritonflow.ops.shapes import normalize_dim

REDUCE_SHAPES = [((7,), (0,)), ((3, 5), (1,)), ((3, 5), (0,)), ((2, 3, 4), (0, 2)), ((4, 6), (0, 1)),
                 ((5,), ()), ((), ()), ((0, 3), (1,)), ((0, 3), (0,))]


def reduced_shape(shape, dims, keepdim):
    if keepdim:
        return tuple(1 if i in dims else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in dims)


def _infer_reduce(name, out_dtype_rule, accepted=None, nonempty=False):
    """The type rule of a reduction; `nonempty`: reducing a zero-size dim is an error (max, argmax)."""
    def infer(types, attrs):
        (x,) = types
        dims = attrs["dims"]
        for d in dims:
            if not (0 <= d < max(x.ndim, 1)):
                raise ShapeError(f"{name}: dim {d} out of range for shape {x.shape}")
        if accepted and x.dtype.name not in accepted:
            raise DTypeError(f"{name}: dtype {x.dtype.name} is not supported")
        if nonempty:
            for d in dims:
                if isinstance(x.shape[d], int) and x.shape[d] == 0:
                    raise ShapeError(f"{name}: cannot reduce over a zero-size dimension {d} of shape {x.shape}")
        return TensorType(reduced_shape(x.shape, dims, attrs["keepdim"]), out_dtype_rule(x.dtype))
    return infer


def _accumulating(dtype):
    return D.int64 if dtype.category in ("bool", "int") else dtype


def _same(dtype):
    return dtype


def _index(dtype):
    return D.int64


def _np_reduce(fn, accumulate=True):
    def run(x, dims, keepdim):
        axis = tuple(dims)
        if accumulate and x.dtype in (np.float16, D.bfloat16.np):
            x = x.astype(np.float32)
        if accumulate and x.dtype.kind in "biu":
            x = x.astype(np.int64)
        if x.ndim == 0:
            return fn(x, axis=None)
        return fn(x, axis=axis, keepdims=keepdim)
    return run


def _np_arg(fn):
    def run(x, dims, keepdim):
        if x.ndim == 0:
            return np.zeros((), np.int64)
        (axis,) = dims
        with np.errstate(invalid="ignore"):
            # NaN wins, like torch: treat NaN as the extreme value.
            if x.dtype.kind in "fV":
                xf = x.astype(np.float64)
                nan = np.isnan(xf)
                if nan.any():
                    r = np.argmax(nan, axis=axis)
                    has = nan.any(axis=axis)
                    r = np.where(has, r, fn(np.where(nan, 0, xf), axis=axis))
                    return np.expand_dims(r, axis) if keepdim else r
            return fn(x, axis=axis, keepdims=keepdim)
    return run


def expand_back(g, x_shape, dims, keepdim):
    """Bring a reduced gradient back to the input's shape (reshape to keepdim form, then expand)."""
    if not keepdim:
        g = T.reshape(g, reduced_shape(x_shape, dims, True))
    return T.expand(g, x_shape)


def _sum_vjp(g, out, x, dims, keepdim):
    if not x.dtype.is_floating_point:
        return (None,)
    return (expand_back(g, x.shape, dims, keepdim),)


def _prod_vjp(g, out, x, dims, keepdim):
    """d prod / d x_i is the product of the other entries: out / x_i without zeros; with one zero,
    the product of the rest at the zero and 0 elsewhere; with two or more, 0 (out / x would be
    0 / 0 = NaN at a zero)."""
    zero = T.eq(x, 0)
    zeros = T.reduce_sum(T.cast(zero, x.dtype), dims, True)
    others = T.prod(T.where(zero, 1.0, x), dim=dims, keepdim=True)
    at_zero = T.where(T.eq(zeros, 1), others, 0.0)
    out_k = expand_back(out, x.shape, dims, keepdim)
    local = T.where(zero, T.expand(at_zero, x.shape), out_k / T.where(zero, 1.0, x))
    return (expand_back(g, x.shape, dims, keepdim) * local,)


def _extreme_vjp(g, out, x, dims, keepdim):
    out_k = expand_back(out, x.shape, dims, keepdim)
    mask = T.cast(T.eq(x, out_k), g.dtype)
    count = T.reduce_sum(mask, dims, True)
    return (expand_back(g, x.shape, dims, keepdim) * mask / count,)


def _samples(with_arg=False, positive=False):
    def make(dtype):
        rng = np.random.default_rng(3)
        out = []
        for shape, dims in REDUCE_SHAPES:
            if with_arg and len(dims) != 1:
                continue
            if with_arg and 0 in shape:
                continue
            for keepdim in (False, True):
                x = random_array(shape, dtype, rng, 0.5 if positive else -3.0, 1.5 if positive else 3.0)
                out.append(([x], {"dims": dims, "keepdim": keepdim}))
        return out
    return make


def _extreme_samples(dtype):
    return [s for s in _samples()(dtype) if 0 not in s[0][0].shape]


# ---------------------------------------------------------------- how kernels combine

def _lowest(dtype):
    """The identity of max: below every value of `dtype`."""
    if dtype.is_floating_point:
        return -math.inf
    return False if dtype.is_bool else int(np.iinfo(dtype.np).min)


def _highest(dtype):
    if dtype.is_floating_point:
        return math.inf
    return True if dtype.is_bool else int(np.iinfo(dtype.np).max)


# NaN wins, like NumPy's max and min; argmax/argmin prefer NaN too (torch), first index on ties.
SUM_LOWERING = ReductionLowering("a + b", lambda dtype: 0, block_reduce="tl.sum")
PROD_LOWERING = ReductionLowering("a * b", lambda dtype: 1)
MAX_LOWERING = ReductionLowering("tl.where((a > b) | (a != a), a, b)", _lowest)
MIN_LOWERING = ReductionLowering("tl.where((a < b) | (a != a), a, b)", _highest)
ARGMAX_LOWERING = ReductionLowering("(a > b) | ((a != a) & (b == b))", _lowest, carries_index=True)
ARGMIN_LOWERING = ReductionLowering("(a < b) | ((a != a) & (b == b))", _highest, carries_index=True)

SUM = register(OpDef("reduce_sum", Kind.REDUCTION, _infer_reduce("reduce_sum", _accumulating),
                     _np_reduce(np.sum), _sum_vjp, samples=_samples(), reduction=SUM_LOWERING))
PROD = register(OpDef("reduce_prod", Kind.REDUCTION, _infer_reduce("reduce_prod", _accumulating),
                      _np_reduce(np.prod), _prod_vjp, samples=_samples(positive=True), reduction=PROD_LOWERING))
MAX = register(OpDef("reduce_max", Kind.REDUCTION, _infer_reduce("reduce_max", _same, nonempty=True),
                     _np_reduce(np.max, accumulate=False), _extreme_vjp, samples=_extreme_samples,
                     reduction=MAX_LOWERING))
MIN = register(OpDef("reduce_min", Kind.REDUCTION, _infer_reduce("reduce_min", _same, nonempty=True),
                     _np_reduce(np.min, accumulate=False), _extreme_vjp, samples=_extreme_samples,
                     reduction=MIN_LOWERING))
ARGMAX = register(OpDef("argmax", Kind.REDUCTION, _infer_reduce("argmax", _index, nonempty=True),
                        _np_arg(np.argmax), None, samples=_samples(with_arg=True), differentiable=False,
                        reduction=ARGMAX_LOWERING))
ARGMIN = register(OpDef("argmin", Kind.REDUCTION, _infer_reduce("argmin", _index, nonempty=True),
                        _np_arg(np.argmin), None, samples=_samples(with_arg=True), differentiable=False,
                        reduction=ARGMIN_LOWERING))


def _infer_cumsum(types, attrs):
    (x,) = types
    normalize_dim("cumsum", attrs["dim"], x.ndim)
    return TensorType(x.shape, _accumulating(x.dtype))


def _np_cumsum(x, dim):
    if x.ndim == 0:
        return x.astype(_accumulating(D.from_numpy_dtype(x.dtype)).np)
    if x.dtype in (np.float16, D.bfloat16.np):
        return np.cumsum(x.astype(np.float32), axis=dim)
    if x.dtype.kind in "biu":
        return np.cumsum(x.astype(np.int64), axis=dim)
    return np.cumsum(x, axis=dim)


def _cumsum_vjp(g, out, x, dim):
    if x.ndim == 0:
        return (g,)
    return (T.flip(T.cumsum(T.flip(g, (dim,)), dim), (dim,)),)


def _cumsum_samples(dtype):
    rng = np.random.default_rng(4)
    return [([random_array(s, dtype, rng)], {"dim": d}) for s, d in [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 4), 1)]]


CUMSUM = register(OpDef("cumsum", Kind.SCAN, _infer_cumsum, _np_cumsum, _cumsum_vjp, triton="cumsum",
                        samples=_cumsum_samples))
