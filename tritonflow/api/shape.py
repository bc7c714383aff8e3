"""Framework API: movement functions (views), indexing, joining and splitting."""
from __future__ import annotations

import builtins

import numpy as np

from tritonflow import dtypes as D
from tritonflow.api.convert import cast, from_numpy, is_tensor, promote_operands, tensor
from tritonflow.api.creation import iota, ones
from tritonflow.api.elementwise import _tensor_arg, where
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError, TraceError, TritonflowIndexError, UnsupportedError
from tritonflow.ops import movement as M
from tritonflow.ops.shapes import broadcast_shapes, fmt, normalize_dim
from tritonflow.tracer import state as trace_state


def _shape_arg(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in shape)


def reshape(x, *shape):
    x = _tensor_arg(x, "reshape")
    shape = _shape_arg(shape)
    if tuple(shape) == tuple(x.shape):
        return x
    return apply(M.RESHAPE, [x], {"shape": shape})


view = reshape


def permute(x, *perm):
    x = _tensor_arg(x, "permute")
    perm = _shape_arg(perm)
    if len(perm) != x.ndim:
        raise ShapeError(f"permute: got {len(perm)} dims {perm} for a tensor of shape {fmt(x.shape)}")
    perm = tuple(normalize_dim("permute", p, x.ndim) for p in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return apply(M.PERMUTE, [x], {"perm": perm})


def transpose(x, dim0, dim1):
    x = _tensor_arg(x, "transpose")
    if x.ndim < 2:
        return x
    a, b = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, tuple(perm))


swapaxes = transpose


def expand(x, *shape):
    x = _tensor_arg(x, "expand")
    shape = _shape_arg(shape)
    offset = len(shape) - x.ndim
    shape = tuple(x.shape[i - offset] if (isinstance(d, int) and d == -1 and i >= offset) else d
                  for i, d in enumerate(shape))
    if tuple(shape) == tuple(x.shape):
        return x
    return apply(M.EXPAND, [x], {"shape": shape})


def broadcast_to(x, shape):
    return expand(x, tuple(shape))


def expand_as(x, other):
    return expand(x, tuple(other.shape))


def broadcast_tensors(*tensors):
    shape = broadcast_shapes("broadcast_tensors", *[t.shape for t in tensors])
    return [expand(t, shape) for t in tensors]


def squeeze(x, dim=None):
    x = _tensor_arg(x, "squeeze")
    if dim is None:
        dims = {i for i, d in enumerate(x.shape) if isinstance(d, int) and d == 1}
    else:
        ds = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = {normalize_dim("squeeze", d, x.ndim) for d in ds}
        dims = {d for d in dims if x.ndim and isinstance(x.shape[d], int) and x.shape[d] == 1}
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in dims))


def unsqueeze(x, dim):
    x = _tensor_arg(x, "unsqueeze")
    d = normalize_dim("unsqueeze", dim, x.ndim + 1)
    shape = list(x.shape)
    shape.insert(d, 1)
    return reshape(x, tuple(shape))


def flatten(x, start_dim=0, end_dim=-1):
    x = _tensor_arg(x, "flatten")
    if x.ndim == 0:
        return reshape(x, (1,))
    s = normalize_dim("flatten", start_dim, x.ndim)
    e = normalize_dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = 1
    for d in x.shape[s:e + 1]:
        merged = merged * d
    return reshape(x, tuple(x.shape[:s]) + (merged,) + tuple(x.shape[e + 1:]))


def unflatten(x, dim, sizes):
    d = normalize_dim("unflatten", dim, x.ndim)
    return reshape(x, tuple(x.shape[:d]) + tuple(sizes) + tuple(x.shape[d + 1:]))


def contiguous(x):
    return x


def clone(x):
    """A new tensor with the same values (storage is never shared for writing, so this is cheap)."""
    return x._alias() if not x.requires_grad else x * 1


def slice_primitive(x, start, step, shape):
    if tuple(step) == (1,) * x.ndim and tuple(shape) == tuple(x.shape):
        return x
    return apply(M.SLICE, [x], {"start": tuple(start), "step": tuple(step), "shape": tuple(shape)})


def pad_primitive(x, pads, value):
    return apply(M.PAD, [x], {"pads": tuple(tuple(p) for p in pads), "value": value})


def _dim_of_a_tensor(op: str, x, dim) -> int:
    """normalize_dim for ops that index a real dim: a 0-d tensor has none (dim 0 is only a reduction's)."""
    if x.ndim == 0:
        raise ShapeError(f"{op}: needs a tensor with at least 1 dim, got a 0-d tensor (dim {dim})")
    return normalize_dim(op, dim, x.ndim)


def narrow(x, dim, start, length):
    d = _dim_of_a_tensor("narrow", x, dim)
    size = x.shape[d]
    if all(isinstance(v, int) for v in (start, length, size)) and not (0 <= start and 0 <= length
                                                                         and start + length <= size):
        raise ShapeError(f"narrow: start {start} and length {length} do not fit dim {d} of size {size} "
                         f"(shape {fmt(x.shape)})")
    starts = [0] * x.ndim
    starts[d] = start
    shape = list(x.shape)
    shape[d] = length
    return slice_primitive(x, starts, (1,) * x.ndim, shape)


def flip(x, dims):
    x = _tensor_arg(x, "flip")
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    dims = {normalize_dim("flip", d, x.ndim) for d in dims}
    if x.ndim == 0:  # flipping a 0-d tensor (dim 0 or -1) leaves it as it is, as in PyTorch
        return x
    start = [x.shape[i] - 1 if i in dims and x.shape[i] else 0 for i in range(x.ndim)]
    step = [-1 if i in dims else 1 for i in range(x.ndim)]
    if builtins.any(x.shape[i] == 0 for i in dims):
        return x
    return apply(M.SLICE, [x], {"start": tuple(start), "step": tuple(step), "shape": tuple(x.shape)})


def pad(x, pad, mode: str = "constant", value=0.0):
    """F.pad: `pad` lists (low, high) pairs starting from the LAST dim, as in PyTorch."""
    x = _tensor_arg(x, "pad")
    if mode != "constant":
        raise UnsupportedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: padding {tuple(pad)} must be (low, high) pairs for at most {x.ndim} dims")
    pads = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pads[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    cropped = x
    if builtins.any(lo < 0 or hi < 0 for lo, hi in pads):
        start = [builtins.max(-lo, 0) for lo, _ in pads]
        shape = [d - builtins.max(-lo, 0) - builtins.max(-hi, 0) for d, (lo, hi) in zip(x.shape, pads)]
        cropped = slice_primitive(x, start, (1,) * x.ndim, shape)
        pads = [(builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in pads]
    if builtins.all(p == (0, 0) for p in pads):
        return cropped
    return pad_primitive(cropped, pads, value)


def cat(tensors, dim=0, *, axis=None):
    if axis is not None:
        dim = axis
    tensors = [_tensor_arg(t, "cat") for t in tensors]
    if not tensors:
        raise ShapeError("cat: expected a non-empty list of tensors")
    if len(tensors) > 1:
        tensors, _ = promote_operands("cat", *tensors)
    for t in tensors:
        if t.ndim == 0:
            raise ShapeError("cat: zero-dimensional tensors cannot be concatenated (use stack)")
    d = normalize_dim("cat", dim, tensors[0].ndim)
    if len(tensors) == 1:
        return tensors[0]
    return apply(M.CAT, tensors, {"dim": d})


concatenate = cat


def stack(tensors, dim=0):
    tensors = [_tensor_arg(t, "stack") for t in tensors]
    if not tensors:
        raise ShapeError("stack: expected a non-empty list of tensors")
    for t in tensors[1:]:
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise ShapeError(f"stack: all tensors must have the same shape, got {fmt(tensors[0].shape)} "
                             f"and {fmt(t.shape)}")
    d = normalize_dim("stack", dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    d = _dim_of_a_tensor("split", x, dim)
    n = x.shape[d]
    if not isinstance(n, int):  # chunk and unbind come here too
        raise UnsupportedError(f"split/chunk/unbind: dim {d} of {fmt(x.shape)} has a dynamic size, so the "
                               f"number of pieces is not known when tracing (mark it static)")
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ShapeError(f"split: split size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split: sections {sizes} do not add up to dim {d} of size {n}")
    out, offset = [], 0
    for s in sizes:
        out.append(narrow(x, d, offset, s))
        offset += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    d = _dim_of_a_tensor("chunk", x, dim)
    n = x.shape[d]
    size = -(-n // chunks) if chunks > 0 else 0
    if size == 0:
        raise ShapeError(f"chunk: cannot split dim {d} of size {n} into {chunks} chunks")
    return split(x, size, d)


def unbind(x, dim=0):
    d = _dim_of_a_tensor("unbind", x, dim)
    return tuple(squeeze(t, d) for t in split(x, 1, d))


def gather(x, dim, index):
    x = _tensor_arg(x, "gather")
    if not is_tensor(index) or not index.dtype.is_integer:
        raise DTypeError("gather: index must be an integer tensor")
    d = _dim_of_a_tensor("gather", x, dim)
    for i in range(x.ndim):
        if i != d and isinstance(index.shape[i], int) and isinstance(x.shape[i], int) and index.shape[i] > x.shape[i]:
            raise ShapeError(f"gather: index {fmt(index.shape)} is larger than input {fmt(x.shape)} "
                             f"outside dim {d}")
    if tuple(index.shape) != tuple(x.shape):
        # Only the leading corner of x is read outside dim; a slice makes shapes line up.
        shape = list(index.shape)
        shape[d] = x.shape[d]
        x = slice_primitive(x, (0,) * x.ndim, (1,) * x.ndim, shape) if tuple(shape) != tuple(x.shape) else x
    return apply(M.GATHER, [x, index], {"dim": d})


def take_along_dim(x, indices, dim):
    """NumPy's take_along_axis: every dim but `dim` broadcasts between x and indices."""
    x = _tensor_arg(x, "take_along_dim")
    if not is_tensor(indices) or not indices.dtype.is_integer:
        raise DTypeError("take_along_dim: indices must be an integer tensor")
    if indices.ndim != x.ndim:
        raise ShapeError(f"take_along_dim: indices {fmt(indices.shape)} and input {fmt(x.shape)} need the "
                         f"same number of dims")
    d = _dim_of_a_tensor("take_along_dim", x, dim)
    outside = [tuple(1 if i == d else n for i, n in enumerate(s)) for s in (x.shape, indices.shape)]
    shape = list(broadcast_shapes("take_along_dim", *outside))
    index_shape = list(shape)
    index_shape[d] = indices.shape[d]
    x_shape = list(shape)
    x_shape[d] = x.shape[d]
    return gather(expand(x, tuple(x_shape)), d, expand(indices, tuple(index_shape)))


def _check_index_range(op: str, index, dim: int, size) -> None:
    """Eager integer indices are checked here so the error names the function the user called;
    traced ones, and captured ones read at each call of a jitted function, when the graph runs."""
    if index._node is not None or trace_state.current() is not None or not isinstance(size, int) or \
            index.numel() == 0:
        return
    values = index.detach().numpy()
    bad = values[(values < -size) | (values >= size)]
    if bad.size:
        raise TritonflowIndexError(f"{op}: index {int(bad.reshape(-1)[0])} is out of range for dim {dim} "
                                   f"of size {size}")


def index_select(x, dim, index):
    x = _tensor_arg(x, "index_select")
    if not is_tensor(index) or not index.dtype.is_integer or index.ndim > 1:
        raise DTypeError("index_select: index must be a 0-d or 1-d integer tensor")
    d = _dim_of_a_tensor("index_select", x, dim)
    _check_index_range("index_select", index, d, x.shape[d])
    index = reshape(index, (-1,))
    view_shape = [1] * x.ndim
    view_shape[d] = index.shape[0]
    out_shape = list(x.shape)
    out_shape[d] = index.shape[0]
    return apply(M.GATHER, [x, expand(reshape(index, tuple(view_shape)), tuple(out_shape))], {"dim": d})


def scatter_add(base, dim, index, src):
    d = normalize_dim("scatter_add", dim, base.ndim)
    return apply(M.SCATTER_ADD, [base, index, src], {"dim": d})


def _triangle(x, diagonal, lower):
    if x.ndim < 2:
        raise ShapeError(f"{'tril' if lower else 'triu'}: needs at least 2 dims, got shape {fmt(x.shape)}")
    rows, cols = x.shape[-2], x.shape[-1]
    r = iota((rows, cols), 0, device=x.device)
    c = iota((rows, cols), 1, device=x.device)
    keep = (c - r <= diagonal) if lower else (c - r >= diagonal)
    return where(keep, x, 0)


def tril(x, diagonal=0):
    return _triangle(_tensor_arg(x, "tril"), diagonal, True)


def triu(x, diagonal=0):
    return _triangle(_tensor_arg(x, "triu"), diagonal, False)


# ---------------------------------------------------------------- indexing

def _expand_key(key, ndim):
    if not isinstance(key, tuple):
        key = (key,)
    used = builtins.sum(1 for k in key if k is not None and k is not Ellipsis
                        and not (is_tensor(k) and k.dtype.is_bool) and not isinstance(k, np.ndarray))
    used += builtins.sum(k.ndim for k in key if (is_tensor(k) and k.dtype.is_bool) or
                         (isinstance(k, np.ndarray) and k.dtype == bool))
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise TritonflowIndexError("an index can only have a single ellipsis ('...')")
    out = []
    for k in key:
        if k is Ellipsis:
            out.extend([slice(None)] * (ndim - used))
        else:
            out.append(k)
    if used > ndim:
        raise TritonflowIndexError(f"too many indices for tensor of dimension {ndim}")
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
            raise TritonflowIndexError(f"tensors can be indexed with ints, slices, None, ... and bool "
                                       f"masks; got {type(k).__name__}")
        dim += 1
    for d in range(dim, x.ndim):
        start.append(0)
        step.append(1)
        sliced.append(x.shape[d])
        final.append(x.shape[d])
    return start, step, sliced, final


def _mask_of(k):
    if isinstance(k, np.ndarray) and k.dtype == bool:
        return from_numpy(k)
    if is_tensor(k) and k.dtype.is_bool:
        return k
    return None


def _list_index(k):
    """x[[0, 2]] as in PyTorch and NumPy: a list of ints (or of bools) reads as that index tensor."""
    if isinstance(k, list) and k and (builtins.all(isinstance(v, (bool, np.bool_)) for v in k) or builtins.all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in k)):
        return tensor(k)
    return k


def getitem(x, key):
    key_list = tuple(_list_index(k) for k in key) if isinstance(key, tuple) else (_list_index(key),)
    key = key_list if isinstance(key, tuple) else key_list[0]
    if len(key_list) == 1 and _mask_of(key_list[0]) is not None:
        return _mask_select(x, _mask_of(key_list[0]))
    if builtins.any(is_tensor(k) for k in key_list):
        tensors = [k for k in key_list if is_tensor(k)]
        if len(tensors) == 1 and tensors[0].dtype.is_integer and tensors[0].ndim <= 1:
            pos = next(i for i, k in enumerate(key_list) if is_tensor(k))
            if builtins.all(k == slice(None) for k in key_list[:pos]):
                rest = key_list[pos + 1:]
                picked = index_select(x, pos, tensors[0])
                if tensors[0].ndim == 0:
                    picked = squeeze(picked, pos)
                return getitem(picked, (slice(None),) * (pos + (tensors[0].ndim)) + tuple(rest)) if rest else picked
        raise TritonflowIndexError("advanced indexing supports one integer tensor (after ':'s) or one "
                                   "bool mask; use gather/index_select for more")
    key = _expand_key(key, x.ndim)
    start, step, sliced, final = _basic_plan(x, key)
    out = slice_primitive(x, start, step, sliced)
    return reshape(out, tuple(final))


def _mask_select(x, mask):
    if mask._node is not None or x._node is not None:
        raise TraceError("boolean-mask indexing has a data-dependent output shape and cannot be traced; "
                         "use tritonflow.where(mask, x, 0) instead")
    if tuple(mask.shape) != tuple(x.shape[:mask.ndim]):
        raise TritonflowIndexError(f"mask of shape {fmt(mask.shape)} does not match the indexed tensor "
                                   f"of shape {fmt(x.shape)}")
    positions = np.nonzero(mask.numpy().reshape(-1))[0]
    flat = reshape(x, (-1,) + tuple(x.shape[mask.ndim:]))
    return index_select(flat, 0, from_numpy(positions.astype(np.int64)))


def index_put(x, key, value):
    """The value of `x` after `x[key] = value` (never writes in place; the tensor is rebound)."""
    key_list = key if isinstance(key, tuple) else (key,)
    mask = _mask_of(key_list[0]) if len(key_list) == 1 else None
    if mask is not None:
        if is_tensor(value) and value.ndim > 0 and value.numel() != 1:
            raise TritonflowIndexError("x[mask] = value: value must be a scalar or a 1-element tensor")
        if is_tensor(value):
            value = reshape(value, ())
        return where(expand(reshape(mask, tuple(mask.shape) + (1,) * (x.ndim - mask.ndim)), x.shape),
                     value, x)
    key = _expand_key(key, x.ndim)
    start, step, sliced, final = _basic_plan(x, key)
    if not is_tensor(value):
        value = _tensor_arg(value, "index_put")
    value = cast(value, x.dtype)
    try:
        value = expand(value, tuple(final))
    except ShapeError:
        raise ShapeError(f"index_put (x[key] = value): value of shape {fmt(value.shape)} cannot be broadcast "
                         f"to the indexed shape {fmt(tuple(final))}") from None
    value = reshape(value, tuple(sliced))
    fake_out = slice_primitive(x, start, step, sliced)
    (placed,) = M._slice_vjp(value, fake_out, x, tuple(start), tuple(step), tuple(sliced))
    (covered,) = M._slice_vjp(ones(tuple(sliced), dtype=D.int8, device=x.device), fake_out, x,
                              tuple(start), tuple(step), tuple(sliced))
    (placed, x2), _ = promote_operands("index_put", placed, x)
    return where(covered != 0, placed, x2)
