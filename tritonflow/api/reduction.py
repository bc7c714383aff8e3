"""Framework API: reductions with PyTorch's `dim`/`keepdim` (NumPy's `axis`/`keepdims` accepted too)."""
from __future__ import annotations

from tritonflow import dtypes as D
from tritonflow.api.convert import cast, is_tensor
from tritonflow.api.creation import full
from tritonflow.api.elementwise import _tensor_arg, exp, isinf, log, maximum, minimum, sqrt, where
from tritonflow.api.shape import reshape
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ops import reduction as R
from tritonflow.ops.shapes import normalize_dim, normalize_dims
from tritonflow.amp.autocast_mode import autocast_exempt, autocast_to_float32

_MISSING = object()


def _dims(op, x, dim, axis, keepdim, keepdims):
    if axis is not _MISSING:
        dim = axis
    if keepdims is not _MISSING:
        keepdim = keepdims
    return normalize_dims(op, dim, x.ndim), bool(keepdim)


def reduce_sum(x, dims, keepdim: bool):
    return apply(R.SUM, [x], {"dims": tuple(dims), "keepdim": keepdim})


@autocast_to_float32
def sum(x, dim=None, keepdim=False, *, dtype=None, axis=_MISSING, keepdims=_MISSING):
    x = _tensor_arg(x, "sum")
    dims, keepdim = _dims("sum", x, dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = cast(x, dtype)
    return reduce_sum(x, dims, keepdim)


@autocast_to_float32
def prod(x, dim=None, keepdim=False, *, dtype=None, axis=_MISSING, keepdims=_MISSING):
    x = _tensor_arg(x, "prod")
    dims, keepdim = _dims("prod", x, dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = cast(x, dtype)
    return apply(R.PROD, [x], {"dims": dims, "keepdim": keepdim})


def _count(x, dims):
    n = 1
    for d in dims:
        n = n * x.shape[d]
    return n


def _divisor(x, dims, minus: int = 0):
    """The element count over `dims` (less `minus`) as a number, or, when a dim is symbolic
    (jit(dynamic=True)), as a 0-d tensor counted at run time: a Symbol is not an operand."""
    n = _count(x, dims)
    if isinstance(n, int):
        return n - minus
    count_dtype = D.float64 if x.dtype is D.float64 else D.float32
    ones = full(tuple(x.shape[d] for d in dims), 1, dtype=count_dtype)
    return cast(reduce_sum(ones, tuple(range(len(dims))), False) - minus, x.dtype)


@autocast_exempt
def mean(x, dim=None, keepdim=False, *, dtype=None, axis=_MISSING, keepdims=_MISSING):
    x = _tensor_arg(x, "mean")
    dims, keepdim = _dims("mean", x, dim, axis, keepdim, keepdims)
    if dtype is not None:
        x = cast(x, dtype)
    if not x.dtype.is_floating_point:
        raise DTypeError(f"mean: could not infer output dtype; input dtype {x.dtype.name} must be "
                         f"floating point (pass dtype=)")
    return reduce_sum(x, dims, keepdim) / _divisor(x, dims)


def amax(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    x = _tensor_arg(x, "amax")
    dims, keepdim = _dims("amax", x, dim, axis, keepdim, keepdims)
    return apply(R.MAX, [x], {"dims": dims, "keepdim": keepdim})


def amin(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    x = _tensor_arg(x, "amin")
    dims, keepdim = _dims("amin", x, dim, axis, keepdim, keepdims)
    return apply(R.MIN, [x], {"dims": dims, "keepdim": keepdim})


def _arg(op, name, x, dim, keepdim):
    x = _tensor_arg(x, name)
    if dim is None:
        flat = reshape(x, (-1,))
        out = apply(op, [flat], {"dims": (0,), "keepdim": False})
        if keepdim:
            out = reshape(out, (1,) * x.ndim)
        return out
    d = normalize_dim(name, dim, x.ndim)
    if x.ndim == 0:
        return apply(op, [x], {"dims": (), "keepdim": keepdim})
    return apply(op, [x], {"dims": (d,), "keepdim": bool(keepdim)})


def argmax(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    dim = dim if axis is _MISSING else axis
    keepdim = keepdim if keepdims is _MISSING else keepdims
    return _arg(R.ARGMAX, "argmax", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    dim = dim if axis is _MISSING else axis
    keepdim = keepdim if keepdims is _MISSING else keepdims
    return _arg(R.ARGMIN, "argmin", x, dim, keepdim)


class ValuesIndices(tuple):
    """(values, indices), as torch.max(x, dim) returns."""

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def _max_or_min(x, dim, keepdim, axis, keepdims, pairwise, reduce, arg):
    if is_tensor(dim):
        return pairwise(x, dim)
    dim = dim if axis is _MISSING else axis
    keepdim = keepdim if keepdims is _MISSING else keepdims
    if dim is None:
        return reduce(x)
    return ValuesIndices((reduce(x, dim, keepdim), arg(x, dim, keepdim)))


def max(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    """max(x) -> the largest value; max(x, dim) -> (values, indices); max(a, b) -> maximum."""
    return _max_or_min(x, dim, keepdim, axis, keepdims, maximum, amax, argmax)


def min(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    """min(x) -> the smallest value; min(x, dim) -> (values, indices); min(a, b) -> minimum."""
    return _max_or_min(x, dim, keepdim, axis, keepdims, minimum, amin, argmin)


@autocast_exempt
def var(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=_MISSING, keepdims=_MISSING):
    """Two-pass variance (subtract the mean first: no catastrophic cancellation)."""
    x = _tensor_arg(x, "var")
    if unbiased is not None:
        correction = 1 if unbiased else 0
    dims, keepdim = _dims("var", x, dim, axis, keepdim, keepdims)
    if not x.dtype.is_floating_point:
        x = cast(x, D.DEFAULT_FLOAT)
    centered = x - mean(x, dims, True)
    denom = _divisor(x, dims, correction)
    total = reduce_sum(centered * centered, dims, keepdim)
    if isinstance(denom, int) and denom <= 0:
        return total / 0.0 if denom == 0 else total * float("nan")
    return total / denom


@autocast_exempt
def std(x, dim=None, keepdim=False, *, correction=1, unbiased=None, axis=_MISSING, keepdims=_MISSING):
    return sqrt(var(x, dim, keepdim, correction=correction, unbiased=unbiased, axis=axis, keepdims=keepdims))


@autocast_exempt
def logsumexp(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    """log(sum(exp(x))) computed around the row maximum; rows of -inf give -inf, never NaN."""
    x = _tensor_arg(x, "logsumexp")
    dims, keepdim = _dims("logsumexp", x, dim, axis, keepdim, keepdims)
    if not x.dtype.is_floating_point:
        x = cast(x, D.DEFAULT_FLOAT)
    m = apply(R.MAX, [x], {"dims": dims, "keepdim": True})
    m = where(isinf(m), 0.0, m)
    out = log(reduce_sum(exp(x - m), dims, True)) + m
    if not keepdim:
        out = reshape(out, tuple(d for i, d in enumerate(x.shape) if i not in dims))
    return out


def _all_or_any(x, dim, keepdim, axis, keepdims, name: str, reduction, empty_value: bool):
    x = _tensor_arg(x, name)
    dims, keepdim = _dims(name, x, dim, axis, keepdim, keepdims)
    if _count(x, dims) == 0:
        return full(tuple(1 if (keepdim and i in dims) else d for i, d in enumerate(x.shape)
                          if keepdim or i not in dims), empty_value, dtype=D.bool_)
    return apply(reduction, [cast(x, D.bool_)], {"dims": dims, "keepdim": keepdim})


def all(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    """Whether every element (along `dim`) is nonzero: the bool minimum, True over nothing."""
    return _all_or_any(x, dim, keepdim, axis, keepdims, "all", R.MIN, True)


def any(x, dim=None, keepdim=False, *, axis=_MISSING, keepdims=_MISSING):
    """Whether some element (along `dim`) is nonzero: the bool maximum, False over nothing."""
    return _all_or_any(x, dim, keepdim, axis, keepdims, "any", R.MAX, False)


@autocast_to_float32
def cumsum(x, dim, *, dtype=None):
    x = _tensor_arg(x, "cumsum")
    if dtype is not None:
        x = cast(x, dtype)
    d = normalize_dim("cumsum", dim, x.ndim) if x.ndim else 0
    if x.ndim == 0 and dim not in (0, -1):
        raise ShapeError(f"cumsum: dim {dim} out of range for a 0-d tensor")
    return apply(R.CUMSUM, [x], {"dim": d})
