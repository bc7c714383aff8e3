"""Op table: matmul — 2-D and batched with broadcast batch dims (the 1-D cases are reshapes in the API)."""
from __future__ import annotations

import numpy as np

from tritonflow.ops.lazy_api import T
from tritonflow import dtypes as D
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.movement import sum_to_shape
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.samples import random_array
from tritonflow.ops.shapes import broadcast_shapes, dims_equal, fmt


def _infer_matmul(types, attrs):
    a, b = types
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"matmul: the primitive takes 2-D or batched operands, got {fmt(a.shape)} @ {fmt(b.shape)}")
    if a.dtype is not b.dtype:
        raise DTypeError(f"matmul: operand dtypes differ ({a.dtype.name} and {b.dtype.name})")
    if a.dtype.is_bool:
        raise DTypeError("matmul: bool operands are not supported")
    if not dims_equal(a.shape[-1], b.shape[-2]):
        raise ShapeError(f"matmul: inner dimensions differ: {fmt(a.shape)} @ {fmt(b.shape)}")
    batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _np_matmul(a, b):
    if a.dtype in (np.float16, D.bfloat16.np):
        return np.matmul(a.astype(np.float32), b.astype(np.float32))
    return np.matmul(a, b)


def _matmul_vjp(g, out, a, b):
    ga = T.matmul(g, T.transpose(b, -1, -2))
    gb = T.matmul(T.transpose(a, -1, -2), g)
    return (sum_to_shape(ga, a.shape), sum_to_shape(gb, b.shape))


def _samples(dt):
    if dt.is_bool:
        return []
    r = np.random.default_rng(6)
    pairs = [((3, 5), (5, 4)), ((2, 3, 5), (5, 2)), ((2, 1, 3, 4), (3, 4, 6)), ((1, 1), (1, 1))]
    return [([random_array(a, dt, r, -2, 2), random_array(b, dt, r, -2, 2)], {}) for a, b in pairs]


MATMUL = register(OpDef("matmul", Kind.MATMUL, _infer_matmul, _np_matmul, _matmul_vjp, triton="matmul",
                        samples=_samples))
