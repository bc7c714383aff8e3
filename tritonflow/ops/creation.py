"""Op table: creation primitives — full, iota, and Philox uniform random numbers."""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D
from tritonflow import philox
from tritonflow.errors import DTypeError, ShapeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.codegen_info import CreationLowering
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.view_index import linearize


def _check_shape(op, shape):
    for d in shape:
        if isinstance(d, int) and d < 0:
            raise ShapeError(f"{op}: negative dimension in shape {tuple(shape)}")


def _infer_full(types, attrs):
    _check_shape("full", attrs["shape"])
    return TensorType(tuple(attrs["shape"]), attrs["dtype"])


FULL = register(OpDef(
    "full", Kind.CREATION, _infer_full,
    lambda shape, value, dtype: np.full(shape, value, dtype=dtype.np),
    None, differentiable=False,
    samples=lambda dt: [([], {"shape": (3, 4), "value": 1, "dtype": dt}), ([], {"shape": (), "value": 0, "dtype": dt})],
    creation=CreationLowering(constant=lambda attrs: attrs["value"]),
))


def _infer_iota(types, attrs):
    _check_shape("iota", attrs["shape"])
    return TensorType(tuple(attrs["shape"]), attrs["dtype"])


def _np_iota(shape, dim, dtype):
    line = np.arange(shape[dim], dtype=np.int64)
    view = [1] * len(shape)
    view[dim] = shape[dim]
    return np.broadcast_to(line.reshape(view), shape).astype(dtype.np)


IOTA = register(OpDef(
    "iota", Kind.CREATION, _infer_iota, _np_iota, None, differentiable=False,
    samples=lambda dt: [([], {"shape": (5,), "dim": 0, "dtype": dt}), ([], {"shape": (3, 4), "dim": 1, "dtype": dt})]
    if not dt.is_bool else [],
    creation=CreationLowering(position=lambda index, shape, attrs: index[attrs["dim"]]),
))


def _infer_uniform(types, attrs):
    seed, offset = types
    if not (seed.dtype is D.int64 and offset.dtype is D.int64 and seed.ndim == 0 and offset.ndim == 0):
        raise DTypeError("philox_uniform: seed and offset must be 0-d int64 tensors")
    _check_shape("rand", attrs["shape"])
    return TensorType(tuple(attrs["shape"]), D.float32)


def _np_uniform(seed, offset, shape, lane):
    return philox.uniform(int(seed), int(offset), tuple(shape), lane)


PHILOX_UNIFORM = register(OpDef(
    "philox_uniform", Kind.CREATION, _infer_uniform, _np_uniform, None, differentiable=False,
    samples=lambda dt: [([np.array(7, np.int64), np.array(3, np.int64)], {"shape": (4, 5), "lane": 0})]
    if dt is D.float32 else [],
    # Number `offset + flat index` of the Philox stream (lane `lane`), as tritonflow/philox.py lays it out.
    creation=CreationLowering(position=lambda index, shape, attrs: linearize(index, shape),
                              template="th.philox_uniform({0}, {1} + {position}, {lane})"),
))
