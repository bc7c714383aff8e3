"""Framework API: movement functions (views), gathering and scattering, joining, splitting, repeating.

Indexing (`x[key]`, `x[key] = value`) is in indexing.py."""
from __future__ import annotations

import builtins

import numpy as np

from tritonflow import dtypes as D
from tritonflow.api.convert import cast, from_numpy, is_tensor, promote_operands
from tritonflow.api.creation import full, iota
from tritonflow.api.elementwise import _tensor_arg, where
from tritonflow.dispatch import apply
from tritonflow.errors import DTypeError, ShapeError, TraceError, TritonflowIndexError, UnsupportedError
from tritonflow.ops import movement as M
from tritonflow.ops import reduction as R
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


def _scatter_operands(op: str, base, dim, index, src) -> tuple:
    """torch.scatter's operands checked and shaped for the primitive: src cut to index's shape (a
    number becomes a filled tensor), index range-checked when eager."""
    base = _tensor_arg(base, op)
    if not is_tensor(index) or not index.dtype.is_integer:
        raise DTypeError(f"{op}: index must be an integer tensor, got {getattr(index, 'dtype', type(index).__name__)}")
    d = _dim_of_a_tensor(op, base, dim)
    if index.ndim != base.ndim:
        raise ShapeError(f"{op}: index {fmt(index.shape)} and input {fmt(base.shape)} need the same number of dims")
    if not is_tensor(src):
        src = full(tuple(index.shape), src, dtype=base.dtype, device=base.device)
    if src.ndim != base.ndim:
        raise ShapeError(f"{op}: source {fmt(src.shape)} and input {fmt(base.shape)} need the same number of dims")
    for i in range(base.ndim):
        if index.shape[i] > src.shape[i] or (i != d and index.shape[i] > base.shape[i]):
            raise ShapeError(f"{op}: index {fmt(index.shape)} is larger than the source {fmt(src.shape)} or, "
                             f"outside dim {d}, the input {fmt(base.shape)}")
    if tuple(src.shape) != tuple(index.shape):
        src = slice_primitive(src, (0,) * src.ndim, (1,) * src.ndim, tuple(index.shape))
    _check_index_range(op, index, d, base.shape[d])
    return base, d, index, cast(src, base.dtype)


def scatter(x, dim, index, src=None, *, value=None, reduce=None):
    """torch.scatter: `x` with src's elements written at `index` along `dim` (a number `value` or `src`
    writes that number); reduce="add" sums instead. Where one position is written twice, which
    value wins is not defined (as in torch)."""
    if reduce not in (None, "add"):
        raise UnsupportedError(f"scatter: reduce={reduce!r} is not supported (only 'add'; see scatter_reduce)")
    base, d, index, src = _scatter_operands("scatter", x, dim, index, value if src is None else src)
    return apply(M.SCATTER_ADD if reduce == "add" else M.SCATTER, [base, index, src], {"dim": d})


def scatter_add(base, dim, index, src):
    """torch.scatter_add: `base` plus src's elements summed in at `index` along `dim`."""
    base, d, index, src = _scatter_operands("scatter_add", base, dim, index, src)
    return apply(M.SCATTER_ADD, [base, index, src], {"dim": d})


def _along_dim(op: str, x, dim, index, source) -> tuple:
    """index_add/index_copy: a 1-d `index` choosing positions along `dim` for source's slices,
    widened to source's shape for the scatter primitives."""
    d = _dim_of_a_tensor(op, x, dim)
    if not is_tensor(index) or not index.dtype.is_integer or index.ndim > 1:
        raise DTypeError(f"{op}: index must be a 0-d or 1-d integer tensor")
    index = reshape(index, (-1,))
    source = _tensor_arg(source, op)
    if source.ndim != x.ndim or source.shape[d] != index.shape[0]:
        raise ShapeError(f"{op}: source {fmt(source.shape)} must have the dims of {fmt(x.shape)} with "
                         f"{index.shape[0]} slices along dim {d}")
    view = [1] * x.ndim
    view[d] = index.shape[0]
    return d, expand(reshape(index, tuple(view)), tuple(source.shape)), source


def index_add(x, dim, index, source, *, alpha=1):
    """torch.index_add: x with `alpha * source`'s slices added at `index` along `dim` (duplicates summed)."""
    d, index, source = _along_dim("index_add", x, dim, index, source)
    return scatter_add(x, d, index, source * alpha if alpha != 1 else source)


def index_copy(x, dim, index, source):
    """torch.index_copy: x with source's slices written at `index` along `dim`."""
    d, index, source = _along_dim("index_copy", x, dim, index, source)
    return scatter(x, d, index, source)


def repeat(x, *sizes):
    """Tensor.repeat: `x` tiled `sizes[i]` times along each dim (leading sizes add dims), as views."""
    x = _tensor_arg(x, "repeat")
    sizes = _shape_arg(sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: {len(sizes)} repeat counts {sizes} for a tensor of {x.ndim} dims "
                         f"(need at least one per dim)")
    if builtins.any(not isinstance(r, int) or r < 0 for r in sizes):
        raise ShapeError(f"repeat: repeat counts must be non-negative ints, got {sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    # A new dim of each count in front of each dim, then merged: (r0, d0, r1, d1, ...) -> (r0*d0, ...).
    paired = reshape(x, tuple(v for d in shape for v in (1, d)))
    tiled = expand(paired, tuple(v for r, d in zip(sizes, shape) for v in (r, d)))
    return reshape(tiled, tuple(r * d for r, d in zip(sizes, shape)))


def tile(x, dims):
    """torch.tile: repeat, with fewer counts than dims meaning leading ones."""
    dims = tuple(dims)
    return repeat(x, (1,) * builtins.max(0, x.ndim - len(dims)) + dims)


def repeat_interleave(x, repeats=None, dim=None, *, output_size=None):
    """Each element (slice along `dim`; of the flattened tensor when dim is None) repeated in place.

    `repeats` an int, or a tensor of one count per element; with a tensor the output's size depends
    on its values, so under jit pass `output_size` (their sum). repeat_interleave(counts) alone gives
    arange(len(counts)) repeated by the counts, as in torch."""
    if repeats is None:
        counts = _tensor_arg(x, "repeat_interleave")
        return repeat_interleave(iota(tuple(counts.shape), 0, device=counts.device), counts, 0,
                                 output_size=output_size)
    x = _tensor_arg(x, "repeat_interleave")
    if dim is None:
        x, dim = reshape(x, (-1,)), 0
    d = _dim_of_a_tensor("repeat_interleave", x, dim)
    if is_tensor(repeats) and repeats.ndim == 0 or (is_tensor(repeats) and repeats.numel() == 1 and x.shape[d] != 1):
        if repeats._node is not None:
            raise TraceError("repeat_interleave: a tensor repeat count is data-dependent under jit; pass an int")
        repeats = int(repeats.item())
    if not is_tensor(repeats):
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 0:
            raise ShapeError(f"repeat_interleave: repeats must be a non-negative int or a tensor, got {repeats!r}")
        shape = list(x.shape)
        widened = expand(unsqueeze(x, d + 1), tuple(shape[:d + 1]) + (repeats,) + tuple(shape[d + 1:]))
        return reshape(widened, tuple(shape[:d]) + (shape[d] * repeats,) + tuple(shape[d + 1:]))
    return index_select(x, d, _interleaved_positions(repeats, x.shape[d], output_size))


def _interleaved_positions(repeats, size, output_size):
    """Position k of the output reads input position i when cumsum(repeats)[i-1] <= k < cumsum(repeats)[i]."""
    if not repeats.dtype.is_integer or repeats.ndim != 1 or repeats.shape[0] != size:
        raise ShapeError(f"repeat_interleave: repeats must be a 1-d integer tensor of {size} counts, got "
                         f"{repeats.dtype.name} of shape {fmt(repeats.shape)}")
    if repeats._node is None:
        counts = repeats.numpy()
        if (counts < 0).any():
            raise ShapeError(f"repeat_interleave: repeats must be non-negative, got {counts.min()}")
        if output_size is not None and int(counts.sum()) != output_size:
            raise ShapeError(f"repeat_interleave: output_size {output_size} differs from the sum of repeats "
                             f"{int(counts.sum())}")
        return from_numpy(np.repeat(np.arange(size, dtype=np.int64), counts))
    if output_size is None:
        raise TraceError("repeat_interleave: with a tensor of repeats the output size depends on its values; "
                         "under jit pass output_size=")
    ends = apply(R.CUMSUM, [cast(repeats, D.int64)], {"dim": 0})
    k = iota((output_size, 1), 0, device=repeats.device)
    return apply(R.SUM, [reshape(ends, (1, size)) <= k], {"dims": (1,), "keepdim": False})


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
