"""Shape rules shared by the op table's `infer` functions: broadcasting, dims, reshape."""
from __future__ import annotations

import sympy

from tritonflow.errors import ShapeError
from tritonflow.ir.types import Dim, numel


def fmt(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def dims_equal(a: Dim, b: Dim) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return sympy.simplify(sympy.sympify(a) - sympy.sympify(b)) == 0


def broadcast_shapes(op: str, *shapes) -> tuple:
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(ndim):
        size: Dim = 1
        for shape in shapes:
            offset = axis - (ndim - len(shape))
            if offset < 0:
                continue
            d = shape[offset]
            if isinstance(d, int) and d == 1:
                continue
            if isinstance(size, int) and size == 1:
                size = d
            elif not dims_equal(size, d):
                shown = " and ".join(fmt(s) for s in shapes)
                raise ShapeError(f"{op}: shapes {shown} cannot be broadcast together "
                                 f"(dimension {axis}: {size} vs {d})")
        result.append(size)
    return tuple(result)


def normalize_dim(op: str, dim, ndim: int) -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise ShapeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if dim < lo or dim > hi:
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimension(s) "
                         f"(expected {lo}..{hi})")
    return dim % max(ndim, 1)


def normalize_dims(op: str, dims, ndim: int) -> tuple:
    """None -> all dims; int or tuple -> sorted unique non-negative dims."""
    if dims is None:
        return tuple(range(ndim))
    if not isinstance(dims, (tuple, list)):
        dims = (dims,)  # a single dim; normalize_dim rejects what is not an int, naming the op
    out = sorted({normalize_dim(op, d, ndim) for d in dims})
    if ndim == 0:
        return ()
    return tuple(out)


def reshape_target(op: str, in_shape, shape) -> tuple:
    """Resolve one -1 and check the element count (symbolic dims allowed)."""
    shape = tuple(shape)
    if sum(1 for d in shape if isinstance(d, int) and d == -1) > 1:
        raise ShapeError(f"{op}: only one dimension can be -1, got {fmt(shape)}")
    total = numel(in_shape)
    for d in shape:
        if isinstance(d, int) and d < -1:
            raise ShapeError(f"{op}: invalid size {d} in {fmt(shape)}")
    if any(isinstance(d, int) and d == -1 for d in shape):
        known = numel([d for d in shape if not (isinstance(d, int) and d == -1)])
        if isinstance(known, int) and known == 0:
            raise ShapeError(f"{op}: cannot infer -1 in {fmt(shape)} for {fmt(in_shape)} with zero elements")
        missing = sympy.sympify(total) / sympy.sympify(known)
        if not (missing.is_integer or (isinstance(total, int) and isinstance(known, int) and total % known == 0)):
            raise ShapeError(f"{op}: shape {fmt(shape)} is invalid for input of shape {fmt(in_shape)}")
        missing = int(missing) if missing.is_Integer else missing
        shape = tuple(missing if (isinstance(d, int) and d == -1) else d for d in shape)
    if not dims_equal(numel(shape), total):
        raise ShapeError(f"{op}: shape {fmt(shape)} is invalid for input of shape {fmt(in_shape)} "
                         f"({total} elements)")
    return shape
