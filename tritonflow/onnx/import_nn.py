"""ONNX import stage: MatMul, Gemm, Conv, pooling, normalizations and inference-mode Dropout.

Conv and pooling run through tritonflow.nn's im2col (`unfold2d`) for 1-D and 2-D inputs; ONNX's
asymmetric pads, auto_pad and ceil_mode are turned into explicit padding first. Average pooling
divides by a per-position count computed from the pads (count_include_pad), separably per axis.
"""
from __future__ import annotations

import math

import numpy as np

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.nn.conv import conv2d, unfold2d
from tritonflow.onnx.import_registry import handles


@handles("MatMul")
def matmul(call):
    return T.matmul(call.tensor(0), call.tensor(1))


@handles("Gemm")
def gemm(call):
    a, b = call.tensor(0), call.tensor(1)
    a = T.transpose(a, 0, 1) if call.attr("transA", 0) else a
    b = T.transpose(b, 0, 1) if call.attr("transB", 0) else b
    y = T.matmul(a, b)
    alpha, beta = call.attr("alpha", 1.0), call.attr("beta", 1.0)
    y = y * alpha if alpha != 1.0 else y
    if call.has(2):
        c = call.tensor(2)
        y = y + (c * beta if beta != 1.0 else c)
    return y


# ---------------------------------------------------------------- windows: Conv and pooling

def _spatial(call, x) -> int:
    spatial = x.ndim - 2
    if spatial not in (1, 2):
        raise call.error(f"{spatial}-D windows are not supported (1-D and 2-D are), input shape {tuple(x.shape)}")
    return spatial


def _window_pads(call, sizes: list, kernel: list, strides: list, dilations: list) -> tuple[list, list]:
    """(pads at the start, pads at the end) per spatial axis, from `pads` or `auto_pad`."""
    auto = call.attr("auto_pad", "NOTSET")
    n = len(sizes)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(sizes, kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        return begin, end
    if auto == "VALID":
        return [0] * n, [0] * n
    pads = list(call.attr("pads", [0] * (2 * n)))
    return pads[:n], pads[n:]


def _window_geometry(call, x, kernel):
    n = len(kernel)
    sizes = list(x.shape[2:])
    strides = list(call.attr("strides", [1] * n))
    dilations = list(call.attr("dilations", [1] * n))
    begin, end = _window_pads(call, sizes, kernel, strides, dilations)
    outs = []
    for i in range(n):
        span = sizes[i] + begin[i] + end[i] - dilations[i] * (kernel[i] - 1) - 1
        out = (math.ceil(span / strides[i]) if call.attr("ceil_mode", 0) else span // strides[i]) + 1
        if call.attr("ceil_mode", 0) and (out - 1) * strides[i] >= sizes[i] + begin[i]:
            out -= 1   # a window must start inside the input or its leading pad
        outs.append(out)
    # ceil_mode's last window may run past the end padding: pad further (those places never count).
    extra = [max((o - 1) * s + d * (k - 1) + 1 - (size + b + e), 0)
             for o, s, d, k, size, b, e in zip(outs, strides, dilations, kernel, sizes, begin, end)]
    return sizes, strides, dilations, begin, end, extra


def _as_2d(x, spatial: int):
    return T.unsqueeze(x, 2) if spatial == 1 else x


def _windows(call, x, kernel, pad_value):
    """(N, C, window, *out) patches of x, whatever its pads, and the geometry used."""
    spatial = _spatial(call, x)
    geometry = _window_geometry(call, x, kernel)
    sizes, strides, dilations, begin, end, extra = geometry
    pads = [(0, 0), (0, 0)] + [(b, e + x_) for b, e, x_ in zip(begin, end, extra)]
    if any(p != (0, 0) for p in pads):
        x = T.pad_primitive(x, tuple(pads), pad_value)
    x2 = _as_2d(x, spatial)
    k2 = ([1] + list(kernel)) if spatial == 1 else list(kernel)
    s2 = ([1] + strides) if spatial == 1 else strides
    d2 = ([1] + dilations) if spatial == 1 else dilations
    cols, ho, wo = unfold2d(x2, tuple(k2), tuple(s2), (0, 0), tuple(d2), pad_value, call.op_type)
    return cols, (ho, wo), geometry


def _from_2d(y, spatial: int):
    return T.squeeze(y, 2) if spatial == 1 else y


@handles("Conv")
def conv(call):
    x, w = call.tensor(0), call.tensor(1)
    spatial = _spatial(call, x)
    kernel = list(w.shape[2:])
    x_padded_geometry = _window_geometry(call, x, kernel)
    _, strides, dilations, begin, end, _ = x_padded_geometry
    pads = [(0, 0), (0, 0)] + list(zip(begin, end))
    if any(p != (0, 0) for p in pads):
        x = T.pad_primitive(x, tuple(pads), 0.0)
    x2, w2 = _as_2d(x, spatial), _as_2d(w, spatial)
    s2 = ([1] + strides) if spatial == 1 else strides
    d2 = ([1] + dilations) if spatial == 1 else dilations
    bias = call.tensor(2) if call.has(2) else None
    y = conv2d(x2, w2, bias, stride=tuple(s2), padding=0, dilation=tuple(d2), groups=call.attr("group", 1))
    return _from_2d(y, spatial)


def _valid_count(size: int, out: int, kernel: int, stride: int, dilation: int, begin: int, end: int,
                 include_pad: bool) -> np.ndarray:
    """How many places of each output window along one axis are averaged."""
    starts = np.arange(out) * stride - begin
    places = starts[:, None] + np.arange(kernel)[None, :] * dilation
    low, high = (-begin, size + end) if include_pad else (0, size)
    return ((places >= low) & (places < high)).sum(axis=1)


@handles("AveragePool", "MaxPool")
def pool(call):
    x = call.tensor(0)
    if call.op_type == "MaxPool" and call.n_outputs > 1:
        raise call.error("MaxPool's Indices output is not supported")
    kernel = list(call.attr("kernel_shape"))
    spatial = _spatial(call, x)
    if call.op_type == "MaxPool":
        lowest = -math.inf if x.dtype.is_floating_point else int(D.iinfo(x.dtype).min)
        cols, _, _ = _windows(call, x, kernel, lowest)
        return _from_2d(T.amax(cols, 2), spatial)
    cols, (ho, wo), (sizes, strides, dilations, begin, end, _) = _windows(call, x, kernel, 0.0)
    include = bool(call.attr("count_include_pad", 0))
    outs = [wo] if spatial == 1 else [ho, wo]
    counts = [_valid_count(*args, include) for args in zip(sizes, outs, kernel, strides, dilations, begin, end)]
    count = counts[0] if spatial == 1 else np.outer(counts[0], counts[1])
    total = _from_2d(T.sum(cols, 2), spatial)
    return total / T.from_numpy(np.maximum(count, 1).astype(x.dtype.np))


@handles("GlobalAveragePool", "GlobalMaxPool")
def global_pool(call):
    x = call.tensor(0)
    dims = tuple(range(2, x.ndim))
    return T.mean(x, dims, True) if call.op_type == "GlobalAveragePool" else T.amax(x, dims, True)


# ---------------------------------------------------------------- normalizations

def _per_channel(t, ndim: int):
    return T.reshape(t, (1, -1) + (1,) * (ndim - 2))


def _normalize(x, dims: tuple, eps: float):
    mean = T.mean(x, dims, True)
    centered = x - mean
    inv_std = T.rsqrt(T.mean(centered * centered, dims, True) + eps)
    return centered * inv_std, mean, inv_std


@handles("BatchNormalization", check=lambda attrs, opset: "training_mode=1 is not supported"
         if attrs.get("training_mode", 0) else None)
def batch_norm(call):
    x, scale, bias, mean, var = (call.tensor(i) for i in range(5))
    eps = call.attr("epsilon", 1e-5)
    inv = T.rsqrt(_per_channel(var, x.ndim) + eps)
    return (x - _per_channel(mean, x.ndim)) * inv * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)


@handles("InstanceNormalization")
def instance_norm(call):
    x = call.tensor(0)
    y, _, _ = _normalize(x, tuple(range(2, x.ndim)), call.attr("epsilon", 1e-5))
    return y * _per_channel(call.tensor(1), x.ndim) + _per_channel(call.tensor(2), x.ndim)


@handles("LayerNormalization")
def layer_norm(call):
    x = call.tensor(0)
    axis = call.attr("axis", -1) % x.ndim
    dims = tuple(range(axis, x.ndim))
    compute = D.float32 if call.attr("stash_type", 1) == 1 and x.dtype.is_low_precision else x.dtype
    y, mean, inv_std = _normalize(T.cast(x, compute), dims, call.attr("epsilon", 1e-5))
    y = T.cast(y, x.dtype) * call.tensor(1)
    if call.has(2):
        y = y + call.tensor(2)
    return [y, mean, inv_std][:max(call.n_outputs, 1)]


@handles("GroupNormalization")
def group_norm(call):
    x = call.tensor(0)
    groups = call.attr("num_groups")
    n, c = x.shape[0], x.shape[1]
    grouped = T.reshape(x, (n, groups, -1))
    y, _, _ = _normalize(grouped, (2,), call.attr("epsilon", 1e-5))
    y = T.reshape(y, tuple(x.shape))
    scale, bias = call.tensor(1), call.tensor(2)
    if call.opset < 21:   # opset 18: one scale and bias per group
        scale, bias = (T.reshape(T.expand(T.reshape(t, (groups, 1)), (groups, c // groups)), (c,)) for t in (scale, bias))
    return y * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)


@handles("RMSNormalization")
def rms_norm(call):
    x = call.tensor(0)
    axis = call.attr("axis", -1) % x.ndim
    dims = tuple(range(axis, x.ndim))
    compute = D.float32 if x.dtype.is_low_precision else x.dtype
    xf = T.cast(x, compute)
    y = xf * T.rsqrt(T.mean(xf * xf, dims, True) + call.attr("epsilon", 1e-5))
    return T.cast(y, x.dtype) * call.tensor(1)


@handles("LpNormalization")
def lp_norm(call):
    x = call.tensor(0)
    axis = call.attr("axis", -1) % x.ndim
    p = call.attr("p", 2)
    norm = T.sum(T.abs(x), axis, True) if p == 1 else T.sqrt(T.sum(x * x, axis, True))
    return T.where(norm == 0, T.zeros_like(x), x / norm)


@handles("MeanVarianceNormalization")
def mean_variance_norm(call):
    x = call.tensor(0)
    dims = tuple(a % x.ndim for a in call.attr("axes", [0, 2, 3]))
    mean = T.mean(x, dims, True)
    variance = T.mean(x * x, dims, True) - mean * mean
    return (x - mean) / (T.sqrt(variance) + 1e-9)


@handles("Dropout")
def dropout(call):
    x = call.tensor(0)
    if call.has(2):
        training = call.static(2, "training_mode")
        if bool(np.asarray(training).reshape(-1)[0]):
            raise call.error("Dropout with training_mode=True draws random numbers; only inference is supported")
    if call.n_outputs > 1:
        return [x, T.ones(tuple(x.shape), dtype=D.bool_)]
    return x
