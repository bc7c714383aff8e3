"""Op table: argsort — the one sorting primitive (sort, topk, multinomial are composites over it).

A stable sort along one dim whose result is the order: positions (int64) such that gathering the
input at them gives the sorted values. Gathering is exact and differentiable (its vjp scatters the
gradient back), so `sort` and `topk` need no backward rule of their own. Order of values as
torch's: NaN above +inf, -0.0 equal to 0.0; equal values keep their input order (stable), also
when descending.
"""
from __future__ import annotations

import numpy as np

from tritonflow import dtypes as D
from tritonflow.errors import ShapeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.codegen_info import SortLowering
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.samples import random_array


def _infer_argsort(types, attrs):
    (x,) = types
    dim = attrs["dim"]
    if not (0 <= dim < max(x.ndim, 1)):
        raise ShapeError(f"argsort: dim {dim} out of range for shape {tuple(x.shape)}")
    return TensorType(x.shape, D.int64)


def _comparable(x: np.ndarray) -> np.ndarray:
    """Values NumPy orders as torch does: half floats widened exactly, bools as integers."""
    if x.dtype in (np.float16, D.bfloat16.np):
        return x.astype(np.float32)
    if x.dtype == np.bool_:
        return x.astype(np.int8)
    return x


def _np_argsort(x, dim, descending):
    if x.ndim == 0:
        return np.zeros((), np.int64)
    values = _comparable(x)
    if not descending:
        return np.argsort(values, axis=dim, kind="stable").astype(np.int64)
    # Descending and stable: sort the reversed row ascending (ties now last-first), then read the
    # result backwards, which puts ties first-first again and NaN (sorted last) in front.
    size = values.shape[dim]
    order = np.argsort(np.flip(values, dim), axis=dim, kind="stable")
    return np.flip(size - 1 - order, dim).astype(np.int64)


def _argsort_samples(dtype):
    rng = np.random.default_rng(8)
    out = []
    for shape, dim in [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 3, 9), 2), ((2, 1, 4), 1), ((), 0), ((0, 3), 1)]:
        # Few distinct values, so rows hold ties and the stable order is tested.
        x = random_array(shape, dtype, rng, -2.0, 2.0)
        if dtype.is_floating_point:
            x = np.asarray(np.round(x)).astype(dtype.np)
        for descending in (False, True):
            out.append(([x], {"dim": dim, "descending": descending}))
    return out


ARGSORT = register(OpDef(
    "argsort", Kind.SORT, _infer_argsort, _np_argsort, None, differentiable=False,
    samples=_argsort_samples,
    sort=SortLowering(dim=lambda attrs: attrs["dim"], descending=lambda attrs: attrs["descending"]),
))
