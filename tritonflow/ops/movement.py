"""Op table: movement primitives (views) — reshape, permute, expand, slice, pad, cat — and gather/scatter.

Views never copy in compiled code: the lowering composes them into index expressions. Each
output element reads at most one input element (pad reads none in its border).
"""
from __future__ import annotations

import numpy as np

from tritonflow.ops.lazy_api import T
from tritonflow.errors import DTypeError, ShapeError, TritonflowIndexError
from tritonflow import dtypes as D
from tritonflow.ir.types import TensorType
from tritonflow.ops import view_index as VI
from tritonflow.ops.codegen_info import ViewLowering
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops.samples import random_array
from tritonflow.ops.shapes import broadcast_shapes, dims_equal, fmt, reshape_target


def _rng():
    return np.random.default_rng(5)


# ---------------------------------------------------------------- reshape

def _infer_reshape(types, attrs):
    (x,) = types
    return TensorType(reshape_target("reshape", x.shape, attrs["shape"]), x.dtype)


def _reshape_samples(dtype):
    r = _rng()
    return [([random_array((2, 3, 4), dtype, r)], {"shape": (6, 4)}),
            ([random_array((6,), dtype, r)], {"shape": (1, 2, 3)}),
            ([random_array((), dtype, r)], {"shape": (1, 1)}),
            ([random_array((0, 4), dtype, r)], {"shape": (4, 0)})]


RESHAPE = register(OpDef(
    "reshape", Kind.MOVEMENT, _infer_reshape, lambda x, shape: np.reshape(x, shape),
    lambda g, out, x, shape: (T.reshape(g, x.shape),), samples=_reshape_samples,
    view=ViewLowering(VI.reshape_reads),
))


# ---------------------------------------------------------------- permute

def _infer_permute(types, attrs):
    (x,) = types
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"permute: {tuple(perm)} is not a permutation of the {x.ndim} dims of shape {fmt(x.shape)}")
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


def _permute_vjp(g, out, x, perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (T.permute(g, tuple(inverse)),)


PERMUTE = register(OpDef(
    "permute", Kind.MOVEMENT, _infer_permute, lambda x, perm: np.transpose(x, perm), _permute_vjp,
    samples=lambda dt: [([random_array((2, 3, 4), dt, _rng())], {"perm": (2, 0, 1)}),
                        ([random_array((3, 5), dt, _rng())], {"perm": (1, 0)})],
    view=ViewLowering(VI.permute_reads),
))


# ---------------------------------------------------------------- expand

def _infer_expand(types, attrs):
    (x,) = types
    shape = tuple(attrs["shape"])
    if len(shape) < x.ndim:
        raise ShapeError(f"expand: cannot expand shape {fmt(x.shape)} to fewer dims {fmt(shape)}")
    offset = len(shape) - x.ndim
    for i, d in enumerate(x.shape):
        target = shape[offset + i]
        if not (isinstance(d, int) and d == 1) and not dims_equal(d, target):
            raise ShapeError(f"expand: cannot expand shape {fmt(x.shape)} to {fmt(shape)} (dim {offset + i})")
    return TensorType(shape, x.dtype)


def sum_to_shape(g, shape):
    """Sum a broadcast gradient back down to `shape` (the inverse of expand)."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if isinstance(d, int) and d == 1 and not
        (isinstance(g.shape[lead + i], int) and g.shape[lead + i] == 1))
    if dims:
        g = T.reduce_sum(g, dims, True)
    if lead:
        g = T.reshape(g, tuple(shape))
    return g


EXPAND = register(OpDef(
    "expand", Kind.MOVEMENT, _infer_expand, lambda x, shape: np.broadcast_to(x, shape),
    lambda g, out, x, shape: (sum_to_shape(g, x.shape),),
    samples=lambda dt: [([random_array((3, 1), dt, _rng())], {"shape": (2, 3, 4)}),
                        ([random_array((), dt, _rng())], {"shape": (5,)})],
    view=ViewLowering(VI.expand_reads),
))


# ---------------------------------------------------------------- slice

def _infer_slice(types, attrs):
    (x,) = types
    start, step, shape = attrs["start"], attrs["step"], attrs["shape"]
    if not (len(start) == len(step) == len(shape) == x.ndim):
        raise ShapeError(f"slice: attributes do not match a tensor of shape {fmt(x.shape)}")
    for d, (s, st, n) in enumerate(zip(start, step, shape)):
        if st == 0:
            raise ShapeError("slice: step cannot be zero")
        if isinstance(n, int) and n > 0 and isinstance(x.shape[d], int):
            last = s + (n - 1) * st
            if not (0 <= s < x.shape[d] and 0 <= last < x.shape[d]):
                raise ShapeError(f"slice: dim {d} reads outside 0..{x.shape[d] - 1}")
    return TensorType(tuple(shape), x.dtype)


def _np_slice(x, start, step, shape):
    index = []
    for s, st, n in zip(start, step, shape):
        stop = s + n * st
        index.append(slice(s, stop if stop >= 0 else None, st))
    return x[tuple(index)]


def _slice_vjp(g, out, x, start, step, shape):
    for d in range(x.ndim):
        s, st, n = start[d], step[d], shape[d]
        if st < 0:
            g = T.flip(g, (d,))
            s, st = s + (n - 1) * st, -st
        if st > 1 and not (isinstance(n, int) and n == 0):
            g = T.unsqueeze(g, d + 1)
            zeros_shape = list(g.shape)
            zeros_shape[d + 1] = st - 1
            g = T.cat([g, T.zeros(tuple(zeros_shape), dtype=g.dtype, device=g.device)], d + 1)
            # dims before d were already padded back to x's sizes: read them off g, not out
            merged = list(g.shape[:d]) + [n * st] + list(g.shape[d + 2:])
            g = T.reshape(g, tuple(merged))
            g = T.narrow(g, d, 0, (n - 1) * st + 1)
            n = (n - 1) * st + 1
        pads = [(0, 0)] * x.ndim
        pads[d] = (s, x.shape[d] - s - n)
        if pads[d] != (0, 0):
            g = T.pad_primitive(g, tuple(pads), 0.0)
    return (g,)


SLICE = register(OpDef(
    "slice", Kind.MOVEMENT, _infer_slice, _np_slice, _slice_vjp,
    samples=lambda dt: [([random_array((7, 5), dt, _rng())], {"start": (1, 0), "step": (2, 1), "shape": (3, 5)}),
                        ([random_array((6,), dt, _rng())], {"start": (5,), "step": (-2,), "shape": (3,)})],
    view=ViewLowering(VI.slice_reads),
))


# ---------------------------------------------------------------- pad

def _infer_pad(types, attrs):
    (x,) = types
    pads = attrs["pads"]
    if len(pads) != x.ndim:
        raise ShapeError(f"pad: {len(pads)} (low, high) pairs for a tensor of shape {fmt(x.shape)}")
    shape = []
    for d, (lo, hi) in zip(x.shape, pads):
        if lo < 0 or hi < 0:
            raise ShapeError(f"pad: negative padding {(lo, hi)} (use slicing to crop)")
        shape.append(d + lo + hi)
    return TensorType(tuple(shape), x.dtype)


def _np_pad(x, pads, value):
    return np.pad(x, pads, mode="constant", constant_values=np.asarray(value).astype(x.dtype))


def _pad_vjp(g, out, x, pads, value):
    start = tuple(lo for lo, _ in pads)
    return (T.slice_primitive(g, start, (1,) * x.ndim, x.shape),)


PAD = register(OpDef(
    "pad", Kind.MOVEMENT, _infer_pad, _np_pad, _pad_vjp,
    samples=lambda dt: [([random_array((3, 4), dt, _rng())], {"pads": ((1, 2), (0, 3)), "value": 0.0})],
    view=ViewLowering(VI.pad_reads, fill=lambda attrs: attrs["value"], conditional=True),
))


# ---------------------------------------------------------------- cat

def _infer_cat(types, attrs):
    dim = attrs["dim"]
    first = types[0]
    total = 0
    for t in types:
        if t.ndim != first.ndim:
            raise ShapeError(f"cat: tensors must have the same number of dims, got {fmt(first.shape)} "
                             f"and {fmt(t.shape)}")
        if t.dtype is not first.dtype:
            raise DTypeError(f"cat: dtypes differ ({first.dtype.name} and {t.dtype.name})")
        for d in range(first.ndim):
            if d != dim and not dims_equal(t.shape[d], first.shape[d]):
                raise ShapeError(f"cat: shapes {fmt(first.shape)} and {fmt(t.shape)} differ outside dim {dim}")
        total = total + t.shape[dim]
    shape = list(first.shape)
    shape[dim] = total
    return TensorType(tuple(shape), first.dtype)


def _cat_vjp(g, out, *inputs, dim):
    grads, offset = [], 0
    for x in inputs:
        n = x.shape[dim]
        grads.append(T.narrow(g, dim, offset, n))
        offset = offset + n
    return tuple(grads)


CAT = register(OpDef(
    "cat", Kind.MOVEMENT, _infer_cat, lambda *xs, dim: np.concatenate(xs, axis=dim), _cat_vjp,
    samples=lambda dt: [([random_array((2, 3), dt, _rng()), random_array((4, 3), dt, _rng())], {"dim": 0}),
                        ([random_array((2, 1), dt, _rng()), random_array((2, 5), dt, _rng())], {"dim": 1})],
    view=ViewLowering(VI.cat_reads, conditional=True),
))


# ---------------------------------------------------------------- gather / scatter_add

def _infer_gather(types, attrs):
    x, index = types
    if not index.dtype.is_integer:
        raise DTypeError(f"gather: index must be an integer tensor, got {index.dtype.name}")
    if index.ndim != x.ndim:
        raise ShapeError(f"gather: index {fmt(index.shape)} and input {fmt(x.shape)} need the same number of dims")
    return TensorType(index.shape, x.dtype)


def _positions(op: str, index: np.ndarray, size: int, dim: int) -> np.ndarray:
    """`index` with negative positions counted from the end; TritonflowIndexError when out of range."""
    if index.size and (index.min() < -size or index.max() >= size):
        raise TritonflowIndexError(f"{op}: index out of range for dim {dim} of size {size} "
                                   f"(min {index.min()}, max {index.max()})")
    return np.where(index < 0, index + size, index)


def _np_gather(x, index, dim):
    return np.take_along_axis(x, _positions("gather", index, x.shape[dim], dim), axis=dim)


def _gather_vjp(g, out, x, index, dim):
    size = x.shape[dim]
    one_per_row = index.shape[dim] == 1 and isinstance(size, int) and all(
        dims_equal(index.shape[d], x.shape[d]) for d in range(x.ndim) if d != dim)
    if one_per_row:
        # One position per row (nll_loss, cross_entropy): the gradient is g where the class is the
        # picked one, an elementwise select that fuses with its neighbours, where scattering into a
        # zero tensor first writes and then reads a buffer as large as x.
        position = T.where(index < 0, index + size, index)
        classes = T.iota(tuple(x.shape), dim, dtype=position.dtype, device=g.device)
        return (T.where(classes == position, g, T.zeros((), dtype=g.dtype, device=g.device)), None)
    zeros = T.zeros(x.shape, dtype=g.dtype, device=g.device)
    return (T.scatter_add(zeros, dim, index, g), None)


def _gather_samples(dt):
    r = _rng()
    return [([random_array((4, 5), dt, r), r.integers(0, 4, size=(3, 5))], {"dim": 0}),
            ([random_array((4, 5), dt, r), r.integers(-5, 5, size=(4, 2))], {"dim": 1})]


GATHER = register(OpDef("gather", Kind.GATHER, _infer_gather, _np_gather, _gather_vjp, samples=_gather_samples))


def _infer_scatter(name):
    def infer(types, attrs):
        base, index, src = types
        if base.dtype is not src.dtype:
            raise DTypeError(f"{name}: base {base.dtype.name} and source {src.dtype.name} dtypes differ")
        if not index.dtype.is_integer:
            raise DTypeError(f"{name}: index must be an integer tensor, got {index.dtype.name}")
        if tuple(index.shape) != tuple(src.shape):
            raise ShapeError(f"{name}: index {fmt(index.shape)} and source {fmt(src.shape)} shapes differ")
        if index.ndim != base.ndim:
            raise ShapeError(f"{name}: index {fmt(index.shape)} and base {fmt(base.shape)} need the same "
                             f"number of dims")
        return base
    return infer


def _scatter_targets(op: str, base, index, dim) -> tuple:
    """The positions of `base` each element of `index` (and of the source) lands on."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[dim] = _positions(op, index, base.shape[dim], dim)
    return tuple(grids)


def _np_scatter_add(base, index, src, dim):
    out = base.astype(np.float64 if base.dtype.kind in "fV" else base.dtype, copy=True)
    np.add.at(out, _scatter_targets("scatter_add", base, index, dim), src)
    return out


def _scatter_add_vjp(g, out, base, index, src, dim):
    return (g, None, T.gather(g, dim, index))


SCATTER_ADD = register(OpDef(
    "scatter_add", Kind.OPAQUE, _infer_scatter("scatter_add"), _np_scatter_add, _scatter_add_vjp,
    samples=lambda dt: [([random_array((4, 3), dt, _rng()), _rng().integers(0, 4, (5, 3)),
                          random_array((5, 3), dt, _rng())], {"dim": 0})],
    atomic="add",
))


def _np_scatter(base, index, src, dim):
    # Where several sources land on one position the last wins here; kernels may keep any of them
    # (torch leaves it undefined too).
    out = base.copy()
    out[_scatter_targets("scatter", base, index, dim)] = src
    return out


def _scatter_vjp(g, out, base, index, src, dim):
    written = T.scatter(T.zeros(base.shape, dtype=D.bool_, device=g.device), dim, index,
                        T.ones(src.shape, dtype=D.bool_, device=g.device))
    return (T.where(written, T.zeros_like(g), g), None, T.gather(g, dim, index))


def _scatter_samples(dt):
    r = _rng()
    # Each column's positions are distinct, so the result does not depend on which write wins.
    index = np.stack([r.permutation(4)[:3] for _ in range(3)], axis=1)
    return [([random_array((4, 3), dt, r), index, random_array((3, 3), dt, r)], {"dim": 0}),
            ([random_array((2, 5), dt, r), np.array([[4, -2], [0, 2]]), random_array((2, 2), dt, r)], {"dim": 1})]


SCATTER = register(OpDef(
    "scatter", Kind.OPAQUE, _infer_scatter("scatter"), _np_scatter, _scatter_vjp, samples=_scatter_samples,
    atomic="xchg",
))

__all__ = ["broadcast_shapes"]
