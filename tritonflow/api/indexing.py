"""Framework API: indexing — reading `x[key]`, and the value of `x` after `x[key] = value`.

Keys are PyTorch's and NumPy's: ints, slices, None, `...`, bool masks, integer tensors (or lists
and NumPy arrays of them).
- Ints, slices, None and `...` alone are views: one slice primitive and a reshape.
- Integer tensors (advanced indexing) broadcast together. The dims they index are read as one flat
  position into those dims (index_select) and written with a scatter (scatter_add when
  accumulating, as `index_put(..., accumulate=True)`). Ints index first, as torch does (NumPy
  instead counts them with the tensors); then the result dims of the tensors stand where the
  indexed dims were when those are adjacent, and first otherwise. Where one position is written
  twice without accumulating, which value wins is not defined (as in torch).
- A bool mask stands for the positions of its True elements, so the result's size depends on the
  data: eager only. `x[mask] = scalar` is the exception: a `where`, which traces.
Writes never happen in place: `index_put` returns the new value and Tensor.__setitem__ rebinds it.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass

import numpy as np

from tritonflow import dtypes as D
from tritonflow.api.convert import cast, from_numpy, is_tensor, promote_operands, tensor
from tritonflow.api.creation import ones
from tritonflow.api.elementwise import _tensor_arg, where
from tritonflow.api.shape import (_check_index_range, broadcast_tensors, expand, index_select, permute, reshape,
                                  scatter, scatter_add, slice_primitive)
from tritonflow.errors import ShapeError, TraceError, TritonflowIndexError, UnsupportedError
from tritonflow.ops import movement as M
from tritonflow.ops.shapes import fmt

_WRITE = "index_put (x[key] = value)"


# ---------------------------------------------------------------- keys

def _as_index(k):
    """Lists and NumPy arrays of ints or bools as the tensors they stand for; other keys as they are."""
    if isinstance(k, np.ndarray) and k.dtype.kind in "biu":
        return from_numpy(k if k.dtype.kind == "b" else k.astype(np.int64))
    if isinstance(k, list) and k and (builtins.all(isinstance(v, (bool, np.bool_)) for v in k) or builtins.all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in k)):
        return tensor(k)
    return k


def _is_mask(k) -> bool:
    return is_tensor(k) and k.dtype.is_bool


def _normalize(key) -> tuple:
    return tuple(_as_index(k) for k in (key if isinstance(key, tuple) else (key,)))


def _expand_key(key: tuple, ndim: int) -> list:
    """`...` replaced by the slices it stands for (a mask covers as many dims as it has)."""
    used = builtins.sum(k.ndim if _is_mask(k) else 1 for k in key if k is not None and k is not Ellipsis)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise TritonflowIndexError("an index can only have a single ellipsis ('...')")
    if used > ndim:
        raise TritonflowIndexError(f"too many indices for tensor of dimension {ndim}")
    out = []
    for k in key:
        out.extend([slice(None)] * (ndim - used) if k is Ellipsis else [k])
    return out


def _basic_plan(x, key):
    """Translate ints/slices/None into (start, step, sliced shape, final shape)."""
    start, step, sliced, final = [], [], [], []
    dim = 0
    for k in key:
        if k is None:
            final.append(1)
            continue
        if dim >= x.ndim:
            raise TritonflowIndexError(f"too many indices for tensor of dimension {x.ndim}")
        size = x.shape[dim]
        if isinstance(k, (bool, np.bool_)):
            raise TritonflowIndexError("indexing with a Python bool is not supported")
        if isinstance(k, (int, np.integer)):
            k = int(k)
            if not isinstance(size, int):
                raise TritonflowIndexError("integer indexing into a dynamic dimension is not supported")
            if k < -size or k >= size:
                raise TritonflowIndexError(f"index {k} is out of bounds for dimension {dim} with size {size}")
            start.append(k % size)
            step.append(1)
            sliced.append(1)
        elif isinstance(k, slice):
            if not isinstance(size, int):
                if k == slice(None):
                    start.append(0)
                    step.append(1)
                    sliced.append(size)
                    final.append(size)
                    dim += 1
                    continue
                raise TritonflowIndexError("slicing a dynamic dimension is only supported as ':'")
            for part in (k.start, k.stop, k.step):
                if part is not None and not isinstance(part, (int, np.integer)):
                    raise TritonflowIndexError(f"slice indices must be integers or None, got "
                                               f"{type(part).__name__}")
            if k.step is not None and k.step == 0:
                raise TritonflowIndexError("slice step cannot be zero")
            s, e, st = k.indices(size)
            n = builtins.max(0, len(range(s, e, st)))
            start.append(s if n else 0)
            step.append(st if n else 1)
            sliced.append(n)
            final.append(n)
        else:
            raise TritonflowIndexError(f"tensors can be indexed with ints, slices, None, ..., bool masks and "
                                       f"integer tensors; got {type(k).__name__}")
        dim += 1
    for d in range(dim, x.ndim):
        start.append(0)
        step.append(1)
        sliced.append(x.shape[d])
        final.append(x.shape[d])
    return start, step, sliced, final


def _masks_as_positions(op: str, x, key: list) -> list:
    """Each bool mask replaced by the integer positions of its True elements, one tensor per dim
    it covers (eager only: how many there are depends on the data)."""
    out, dim = [], 0
    for k in key:
        if not _is_mask(k):
            out.append(k)
            dim += k is not None
            continue
        if k._node is not None:
            raise TraceError(f"{op}: boolean-mask indexing has a data-dependent output shape and cannot be "
                             f"traced; use tritonflow.where(mask, x, 0) instead")
        covered = tuple(x.shape[dim:dim + k.ndim])
        if tuple(k.shape) != covered:
            raise TritonflowIndexError(f"{op}: mask of shape {fmt(k.shape)} does not match the indexed tensor "
                                       f"of shape {fmt(x.shape)} at dim {dim}")
        out.extend(from_numpy(p.astype(np.int64)) for p in np.nonzero(k.numpy()))
        dim += k.ndim
    return out


# ---------------------------------------------------------------- advanced indexing

@dataclass
class _Advanced:
    """How integer tensor indices address `x`: a slice of x (the basic part of the key), the
    indexed dims of that slice, and one flat position into them per element of the index shape."""

    start: list
    step: list
    sliced: list
    region: object        # x sliced by the basic part of the key (int dims dropped, indexed dims whole)
    dims: list            # the dims of `region` indexed by tensors
    flat: object          # int64 positions into those dims taken together, of the broadcast index shape
    adjacent: bool        # indexed dims side by side: the result keeps its index dims in their place

    def rest(self) -> list:
        return [d for d in range(self.region.ndim) if d not in self.dims]

    def moved(self):
        """`region` with the indexed dims first, then merged into one: (positions, rest...)."""
        moved = permute(self.region, tuple(self.dims + self.rest()))
        count = 1
        for d in self.dims:
            count *= self.region.shape[d]
        return moved, reshape(moved, (count,) + tuple(self.region.shape[d] for d in self.rest()))

    def lead(self) -> int:
        """Where the index dims stand in the result."""
        return self.dims[0] if self.adjacent else 0


def _advanced_plan(op: str, x, key: tuple) -> _Advanced:
    if builtins.any(k is None for k in key):
        raise UnsupportedError(f"{op}: None (a new axis) together with tensor indices is not supported; "
                               f"unsqueeze the result instead")
    key = _masks_as_positions(op, x, _expand_key(key, x.ndim))
    key += [slice(None)] * (x.ndim - len(key))
    start, step, sliced, final = _basic_plan(x, [slice(None) if is_tensor(k) else k for k in key])
    region = reshape(slice_primitive(x, start, step, sliced), tuple(final))
    # The dims of `region` the tensors index: ints took their dims away (torch applies them first).
    kept = [k for k in key if not isinstance(k, (int, np.integer))]
    dims = [d for d, k in enumerate(kept) if is_tensor(k)]
    key = kept
    for d in dims:
        if not key[d].dtype.is_integer:
            raise TritonflowIndexError(f"{op}: tensors used as indices must be integer or bool tensors, got "
                                       f"{key[d].dtype.name} at dim {d}")
        if not isinstance(region.shape[d], int):
            raise UnsupportedError(f"{op}: a tensor index into dynamic dim {d} (shape {fmt(x.shape)}) is not "
                                   f"supported; keep that dim static")
    try:
        indices = broadcast_tensors(*[key[d] for d in dims])
    except ShapeError:
        shapes = ", ".join(fmt(key[d].shape) for d in dims)
        raise TritonflowIndexError(f"{op}: shape mismatch: index tensors of shapes {shapes} cannot be broadcast "
                                   f"together") from None
    flat = None
    for d, index in zip(dims, indices):
        size = region.shape[d]
        _check_index_range(op, index, d, size)
        index = cast(index, D.int64)
        position = where(index < 0, index + size, index)
        flat = position if flat is None else flat * size + position
    return _Advanced(start, step, sliced, region, dims, flat, dims == list(range(dims[0], dims[-1] + 1)))


def _index_dims_to(t, count: int, lead: int):
    """`t` with its first `count` dims moved to stand after the next `lead` ones."""
    if not lead:
        return t
    perm = list(range(count, count + lead)) + list(range(count)) + list(range(count + lead, t.ndim))
    return permute(t, tuple(perm))


def _index_dims_first(t, count: int, lead: int):
    """The inverse of `_index_dims_to`."""
    if not lead:
        return t
    perm = list(range(lead, lead + count)) + list(range(lead)) + list(range(lead + count, t.ndim))
    return permute(t, tuple(perm))


def _advanced_read(x, key: tuple):
    plan = _advanced_plan("index", x, key)
    _, merged = plan.moved()
    picked = index_select(merged, 0, reshape(plan.flat, (-1,)))
    out = reshape(picked, tuple(plan.flat.shape) + tuple(merged.shape[1:]))
    return _index_dims_to(out, plan.flat.ndim, plan.lead())


def _advanced_write(x, key: tuple, value, accumulate: bool):
    plan = _advanced_plan("index_put", x, key)
    moved, merged = plan.moved()
    index_shape, rest = tuple(plan.flat.shape), tuple(merged.shape[1:])
    result_shape = tuple(rest[:plan.lead()]) + index_shape + tuple(rest[plan.lead():])
    value = _broadcast_value(value, x, result_shape)
    value = _index_dims_first(value, len(index_shape), plan.lead())
    count, width = 1, 1
    for d in index_shape:
        count *= d
    for d in rest:
        width *= d
    positions = expand(reshape(plan.flat, (count, 1)), (count, width))
    write = scatter_add if accumulate else scatter
    written = write(reshape(merged, (merged.shape[0], width)), 0, positions, reshape(value, (count, width)))
    inverse = [0] * moved.ndim
    for i, d in enumerate(plan.dims + plan.rest()):
        inverse[d] = i
    region = permute(reshape(written, tuple(moved.shape)), tuple(inverse))
    return _place(x, reshape(region, tuple(plan.sliced)), plan.start, plan.step, plan.sliced)


def _broadcast_value(value, x, shape: tuple):
    value = cast(value if is_tensor(value) else _tensor_arg(value, "index_put"), x.dtype)
    try:
        return expand(value, shape)
    except ShapeError:
        raise ShapeError(f"{_WRITE}: value of shape {fmt(value.shape)} cannot be broadcast to the indexed "
                         f"shape {fmt(shape)}") from None


def _place(x, region, start, step, sliced):
    """`x` with the slice (start, step, sliced) replaced by `region`."""
    if tuple(start) == (0,) * x.ndim and tuple(step) == (1,) * x.ndim and tuple(sliced) == tuple(x.shape):
        return region
    fake_out = slice_primitive(x, start, step, sliced)
    attrs = (tuple(start), tuple(step), tuple(sliced))
    (placed,) = M._slice_vjp(region, fake_out, x, *attrs)
    (covered,) = M._slice_vjp(ones(tuple(sliced), dtype=D.int8, device=x.device), fake_out, x, *attrs)
    (placed, x2), _ = promote_operands("index_put", placed, x)
    return where(covered != 0, placed, x2)


# ---------------------------------------------------------------- x[key], x[key] = value

def getitem(x, key):
    key = _normalize(key)
    if builtins.any(is_tensor(k) for k in key):
        return _advanced_read(x, key)
    start, step, sliced, final = _basic_plan(x, _expand_key(key, x.ndim))
    return reshape(slice_primitive(x, start, step, sliced), tuple(final))


def index_put(x, indices, values, accumulate: bool = False):
    """The value of `x` after `x[indices] = values` (or `+=` with accumulate=True, duplicates summed),
    as torch.index_put; `indices` is any key `x[...]` takes. Never writes in place."""
    key = _normalize(indices)
    if not accumulate and len(key) == 1 and _is_mask(key[0]) and not (is_tensor(values) and values.numel() != 1):
        return _masked_fill(x, key[0], values)
    if builtins.any(is_tensor(k) for k in key):
        return _advanced_write(x, key, values, accumulate)
    start, step, sliced, final = _basic_plan(x, _expand_key(key, x.ndim))
    value = reshape(_broadcast_value(values, x, tuple(final)), tuple(sliced))
    if accumulate:
        value = value + slice_primitive(x, start, step, sliced)
    return _place(x, value, start, step, sliced)


def _masked_fill(x, mask, value):
    if tuple(mask.shape) != tuple(x.shape[:mask.ndim]):
        raise TritonflowIndexError(f"{_WRITE}: mask of shape {fmt(mask.shape)} does not match the indexed "
                                   f"tensor of shape {fmt(x.shape)}")
    if is_tensor(value):
        value = reshape(value, ())
    return where(expand(reshape(mask, tuple(mask.shape) + (1,) * (x.ndim - mask.ndim)), x.shape), value, x)
