"""ONNX import stage: shape, movement, indexing and constant-creating operators.

Arguments that fix a shape (Reshape's shape, Slice's starts, Tile's repeats, ...) are read with
`call.static`, so they must be known while tracing: constants, or values computed from constants
and input shapes (Shape -> Gather -> Concat chains fold to constants at trace time).
"""
from __future__ import annotations

import math

import numpy as np

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.onnx.import_registry import handles
from tritonflow.onnx.types import array_of_tensor_proto, dtype_of_onnx


def _axis(call, axis: int, ndim: int) -> int:
    if not -ndim <= axis < max(ndim, 1):
        raise call.error(f"axis {axis} is out of range for a tensor with {ndim} dims")
    return axis % max(ndim, 1)


def _axes_input(call, index: int, attr: str = "axes", since: int = 13) -> list | None:
    """Axes given as an input (from opset `since`) or, before it, as an attribute."""
    if call.opset >= since:
        return call.ints(index, attr)
    value = call.attr(attr)
    return None if value is None else list(value)


def constant_tensor(array: np.ndarray):
    return T.from_numpy(np.array(array))  # a copy, C-ordered; 0-d stays 0-d


# ---------------------------------------------------------------- constants and shapes

@handles("Constant")
def constant(call):
    a = call.attrs
    if "value" in a:
        return constant_tensor(array_of_tensor_proto(a["value"], call.label))
    for name, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                        ("value_ints", np.int64)):
        if name in a:
            return constant_tensor(np.asarray(a[name], dtype=dtype))
    raise call.error(f"a Constant with {', '.join(a) or 'no value'} is not supported (value, value_float(s), "
                     f"value_int(s) are)")


def _static_shape(call, x) -> tuple:
    if not all(isinstance(d, int) for d in x.shape):
        raise call.error(f"the shape {tuple(x.shape)} is symbolic; Shape needs concrete sizes (jit without dynamic=True)")
    return tuple(x.shape)


@handles("Shape")
def shape(call):
    dims = _static_shape(call, call.tensor(0))
    start, end = call.attr("start", 0), call.attr("end", None)
    return constant_tensor(np.asarray(dims[start:end], dtype=np.int64))


@handles("Size")
def size(call):
    return constant_tensor(np.asarray(math.prod(_static_shape(call, call.tensor(0))), dtype=np.int64).reshape(()))


@handles("ConstantOfShape")
def constant_of_shape(call):
    dims = call.ints(0, "shape")
    value = call.attr("value")
    array = array_of_tensor_proto(value, call.label) if value is not None else np.zeros(1, np.float32)
    return T.full(tuple(dims), array.reshape(-1)[0].item(), dtype=D.from_numpy_dtype(array.dtype))


@handles("Range")
def range_(call):
    start, limit, delta = (call.static(i, name) for i, name in enumerate(("start", "limit", "delta")))
    count = max(int(math.ceil((float(limit) - float(start)) / float(delta))), 0)
    values = start + np.arange(count).astype(np.asarray(start).dtype) * delta
    return constant_tensor(np.asarray(values, dtype=np.asarray(start).dtype))


@handles("EyeLike")
def eye_like(call):
    x = call.tensor(0)
    dtype = dtype_of_onnx(call.attr("dtype"), call.label) if call.attr("dtype") is not None else x.dtype
    rows, cols = x.shape
    diagonal = T.iota((rows, cols), 1) - T.iota((rows, cols), 0) == call.attr("k", 0)
    return T.cast(diagonal, dtype)


# ---------------------------------------------------------------- reshaping

@handles("Reshape")
def reshape(call):
    x, target = call.tensor(0), call.ints(1, "shape")
    if not call.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]  # 0 copies the input's dim
    return T.reshape(x, tuple(target))


@handles("Flatten")
def flatten(call):
    x = call.tensor(0)
    axis = call.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return T.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@handles("Squeeze")
def squeeze(call):
    x = call.tensor(0)
    axes = _axes_input(call, 1)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {_axis(call, a, x.ndim) for a in axes}
    return T.reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


@handles("Unsqueeze")
def unsqueeze(call):
    x = call.tensor(0)
    axes = _axes_input(call, 1)
    rank = x.ndim + len(axes)
    axes = {_axis(call, a, rank) for a in axes}
    dims = iter(x.shape)
    return T.reshape(x, tuple(1 if i in axes else next(dims) for i in range(rank)))


@handles("Transpose")
def transpose(call):
    x = call.tensor(0)
    perm = call.attr("perm")
    return T.permute(x, tuple(perm) if perm is not None else tuple(reversed(range(x.ndim))))


@handles("Expand")
def expand(call):
    x = call.tensor(0)
    target = np.broadcast_shapes(tuple(x.shape), tuple(call.ints(1, "shape")))   # ONNX broadcasts both ways
    return T.expand(x, target)


@handles("DepthToSpace", "SpaceToDepth")
def depth_space(call):
    x = call.tensor(0)
    b = call.attr("blocksize")
    n, c, h, w = x.shape
    dcr = call.attr("mode", "DCR") == "DCR"   # depth-column-row: the block offsets lead the channels
    if call.op_type == "SpaceToDepth":
        y = T.reshape(x, (n, c, h // b, b, w // b, b))
        perm = (0, 3, 5, 1, 2, 4) if dcr else (0, 1, 3, 5, 2, 4)
        return T.reshape(T.permute(y, perm), (n, c * b * b, h // b, w // b))
    if dcr:
        y = T.permute(T.reshape(x, (n, b, b, c // (b * b), h, w)), (0, 3, 4, 1, 5, 2))
    else:  # CRD
        y = T.permute(T.reshape(x, (n, c // (b * b), b, b, h, w)), (0, 1, 4, 2, 5, 3))
    return T.reshape(y, (n, c // (b * b), h * b, w * b))


# ---------------------------------------------------------------- slicing and joining

@handles("Slice")
def slice_(call):
    x = call.tensor(0)
    if call.opset >= 10:
        starts, ends = call.ints(1, "starts"), call.ints(2, "ends")
        axes, steps = call.ints(3, "axes"), call.ints(4, "steps")
    else:
        starts, ends, axes, steps = call.attr("starts"), call.attr("ends"), call.attr("axes"), None
    axes = list(range(len(starts))) if axes is None else [_axis(call, a, x.ndim) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    start, step, shape = [0] * x.ndim, [1] * x.ndim, list(x.shape)
    for axis, s, e, st in zip(axes, starts, ends, steps):
        if st == 0:
            raise call.error("a slice step of 0")
        # ONNX clamps starts and ends exactly as Python's slice.indices does.
        lo, hi, st = slice(s, e, st).indices(x.shape[axis])
        start[axis], step[axis], shape[axis] = (lo if len(range(lo, hi, st)) else 0), st, len(range(lo, hi, st))
    return T.slice_primitive(x, tuple(start), tuple(step), tuple(shape))


@handles("Concat")
def concat(call):
    values = call.tensors()
    return T.cat(values, _axis(call, call.attr("axis"), values[0].ndim))


@handles("Split")
def split(call):
    x = call.tensor(0)
    axis = _axis(call, call.attr("axis", 0), x.ndim)
    sizes = call.ints(1, "split") if call.opset >= 13 else call.attr("split")
    if sizes is None:
        parts = call.attr("num_outputs", call.n_outputs)
        chunk = -(-x.shape[axis] // parts)   # ceil: the last part may be smaller
        sizes = [min(chunk, x.shape[axis] - i * chunk) for i in range(parts)]
    outputs, offset = [], 0
    for n in sizes:
        outputs.append(T.narrow(x, axis, offset, n))
        offset += n
    return outputs


@handles("Tile")
def tile(call):
    x = call.tensor(0)
    repeats = call.ints(1, "repeats")
    interleaved = tuple(v for d in x.shape for v in (1, d))
    target = tuple(v for r, d in zip(repeats, x.shape) for v in (r, d))
    y = T.expand(T.reshape(x, interleaved), target)
    return T.reshape(y, tuple(r * d for r, d in zip(repeats, x.shape)))


def _pad_indices(mode: str, size: int, low: int, high: int) -> np.ndarray:
    positions = np.arange(-low, size + high)
    if mode == "edge":
        return np.clip(positions, 0, size - 1)
    if mode == "wrap":
        return positions % size
    period = 2 * (size - 1)   # reflect: mirror about the first and last element, which are not repeated
    folded = np.abs(positions) % period if period else np.zeros_like(positions)
    return np.where(folded >= size, period - folded, folded)


@handles("Pad", check=lambda attrs, opset: None if attrs.get("mode", "constant") in ("constant", "edge", "reflect",
                                                                                        "wrap")
         else f"mode {attrs.get('mode')!r} is not supported")
def pad(call):
    x = call.tensor(0)
    mode = call.attr("mode", "constant")
    widths = call.ints(1, "pads") if call.opset >= 11 else list(call.attr("pads"))
    axes = call.ints(3, "axes") if call.opset >= 18 and call.has(3) else list(range(x.ndim))
    axes = [_axis(call, a, x.ndim) for a in axes]
    lows, highs = [0] * x.ndim, [0] * x.ndim
    for i, axis in enumerate(axes):
        lows[axis], highs[axis] = widths[i], widths[i + len(axes)]
    # Negative pads crop first.
    start = [max(-lo, 0) for lo in lows]
    shape = [d - max(-lo, 0) - max(-hi, 0) for d, lo, hi in zip(x.shape, lows, highs)]
    x = T.slice_primitive(x, tuple(start), (1,) * x.ndim, tuple(shape))
    lows, highs = [max(lo, 0) for lo in lows], [max(hi, 0) for hi in highs]
    if mode == "constant":
        widths = tuple(zip(lows, highs))
        if call.opset >= 11 and call.has(2):
            value = call.tensor(2)
            if value._node is not None:   # known only at run time: fill the border through a mask
                border = T.pad_primitive(T.zeros(tuple(x.shape), dtype=D.bool_), widths, True)
                return T.where(border, T.reshape(value, ()), T.pad_primitive(x, widths, 0))
            value = value.numpy().reshape(-1)[0].item()
        else:
            value = call.attr("value", 0.0)
        return T.pad_primitive(x, widths, value)
    for axis in range(x.ndim):
        if lows[axis] or highs[axis]:
            index = _pad_indices(mode, x.shape[axis], lows[axis], highs[axis])
            x = T.index_select(x, axis, constant_tensor(index.astype(np.int64)))
    return x


# ---------------------------------------------------------------- gathers and scatters

def _non_negative(index, size: int):
    return T.where(index < 0, index + size, index)


@handles("Gather")
def gather(call):
    x, index = call.tensor(0), call.tensor(1)
    axis = _axis(call, call.attr("axis", 0), x.ndim)
    picked = T.index_select(x, axis, T.reshape(_non_negative(index, x.shape[axis]), (-1,)))
    return T.reshape(picked, tuple(x.shape[:axis]) + tuple(index.shape) + tuple(x.shape[axis + 1:]))


@handles("GatherElements")
def gather_elements(call):
    x, index = call.tensor(0), call.tensor(1)
    axis = _axis(call, call.attr("axis", 0), x.ndim)
    return T.gather(x, axis, _non_negative(index, x.shape[axis]))


@handles("ScatterElements", check=lambda attrs, opset: None if attrs.get("reduction", "none") in ("none", "add")
         else f"reduction {attrs.get('reduction')!r} is not supported (none and add are)")
def scatter_elements(call):
    base, index, updates = call.tensor(0), call.tensor(1), call.tensor(2)
    axis = _axis(call, call.attr("axis", 0), base.ndim)
    index = _non_negative(index, base.shape[axis])
    if call.attr("reduction", "none") == "add":
        return T.scatter_add(base, axis, index, updates)
    # Replacement (ONNX leaves duplicate indices undefined): clear the written places, add the updates.
    written = T.scatter_add(T.zeros(base.shape, dtype=D.int32), axis, index, T.ones(index.shape, dtype=D.int32)) > 0
    cleared = T.where(written, T.zeros((), dtype=base.dtype), base)
    return T.scatter_add(cleared, axis, index, updates)


@handles("OneHot")
def one_hot(call):
    index, values = call.tensor(0), call.tensor(2)
    depth = int(np.asarray(call.static(1, "depth")).reshape(-1)[0])
    rank = index.ndim + 1
    axis = _axis(call, call.attr("axis", -1), rank)
    index = T.unsqueeze(_non_negative(T.cast(index, D.int64), depth), axis)
    shape = list(index.shape)
    shape[axis] = depth
    hot = T.iota(tuple(shape), axis) == T.expand(index, tuple(shape))
    off, on = T.narrow(values, 0, 0, 1), T.narrow(values, 0, 1, 1)
    return T.where(hot, T.reshape(on, ()), T.reshape(off, ()))


@handles("Trilu")
def trilu(call):
    x = call.tensor(0)
    k = int(np.asarray(call.static(1, "k")).reshape(-1)[0]) if call.has(1) else 0
    return T.triu(x, k) if call.attr("upper", 1) else T.tril(x, k)
