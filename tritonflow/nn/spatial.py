"""tritonflow.nn.functional's spatial ops: convolution, pooling and resampling over (N, C, *spatial).

Framework stage (composites over primitives; nn.functional exports them, the nn.conv modules call
them). `unfold2d` pads the input and takes one strided slice per kernel position; stacking them
gives (N, C, kh*kw, Ho, Wo) without any gather, so the lowering sees only movement ops feeding a
matmul (convolution) or a reduction (pooling). `interpolate` reads each output position's
neighbours with index_select at positions computed as torch computes them and blends them with
constant weights. Gradients come from the op table's rules for these primitives.
"""
from __future__ import annotations

import math

import numpy as np

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.api.softmax import compute_dtype
from tritonflow.amp.autocast_mode import autocast_to_low
from tritonflow.errors import DTypeError, InvalidValueError, ShapeError, UnsupportedError


def _pair(value, name: str, op: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ShapeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return value


def _batched(x, op: str):
    if not T.is_tensor(x):
        raise DTypeError(f"{op}: expected a tensor, got {type(x).__name__}")
    if x.ndim == 3:
        return T.unsqueeze(x, 0), True
    if x.ndim != 4:
        raise ShapeError(f"{op}: expected a 4-D (N, C, H, W) or 3-D (C, H, W) input, got shape {tuple(x.shape)}")
    return x, False


def unfold2d(x, kernel, stride, padding, dilation, pad_value, op: str, extra=(0, 0)):
    """(N, C, H, W) -> (N, C, kh*kw, Ho, Wo): the input patch under each kernel position.

    `padding` pads both sides of H and W; `extra` pads the bottom and right once more (a 'same'
    convolution with an even kernel, pooling with ceil_mode)."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    n, c, h, w = x.shape
    if ph or pw or any(extra):
        x = T.pad_primitive(x, ((0, 0), (0, 0), (ph, ph + extra[0]), (pw, pw + extra[1])), pad_value)
    hp, wp = h + 2 * ph + extra[0], w + 2 * pw + extra[1]
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ShapeError(f"{op}: kernel {kernel} (dilation {dilation}) is larger than the padded input "
                         f"{(hp, wp)} of shape {tuple(x.shape)}")
    patches = []
    for i in range(kh):
        for j in range(kw):
            patch = T.slice_primitive(x, (0, 0, i * dh, j * dw), (1, 1, sh, sw), (n, c, ho, wo))
            patches.append(T.unsqueeze(patch, 2))
    return (T.cat(patches, 2) if len(patches) > 1 else patches[0]), ho, wo


# ---------------------------------------------------------------- convolution

def _same_padding(kernel, dilation, stride, op: str) -> tuple:
    """('same') the (low, extra high) padding per dim: an even total puts the odd element last."""
    if stride != (1, 1):
        raise UnsupportedError(f"{op}: padding='same' needs stride 1, got {stride} (as in torch)")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple(t // 2 for t in totals), tuple(t - 2 * (t // 2) for t in totals)


@autocast_to_low
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D cross-correlation, as torch.nn.functional.conv2d (padding may be 'valid' or 'same')."""
    op = "conv2d"
    x, unbatched = _batched(x, op)
    if not T.is_tensor(weight) or weight.ndim != 4:
        raise ShapeError(f"{op}: weight must be 4-D (out, in/groups, kh, kw), got "
                         f"{tuple(getattr(weight, 'shape', ()))}")
    out_ch, in_per_group, kh, kw = weight.shape
    n, c, h, w = x.shape
    if groups < 1 or c % groups or out_ch % groups or c // groups != in_per_group:
        raise ShapeError(f"{op}: input has {c} channels but weight {tuple(weight.shape)} with groups={groups} "
                         f"expects {in_per_group * groups}")
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    extra = (0, 0)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        padding, extra = _same_padding((kh, kw), dilation, stride, op)
    elif isinstance(padding, str):
        raise InvalidValueError(f"{op}: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    padding = _pair(padding, "padding", op)
    cols, ho, wo = unfold2d(x, (kh, kw), stride, padding, dilation, 0.0, op, extra)
    k = in_per_group * kh * kw
    cols = T.reshape(cols, (n, groups, k, ho * wo))
    wmat = T.reshape(weight, (groups, out_ch // groups, k))
    out = T.matmul(wmat, cols)                                    # (n, groups, out/groups, ho*wo)
    out = T.reshape(out, (n, out_ch, ho, wo))
    if bias is not None:
        out = out + T.reshape(bias, (out_ch, 1, 1))
    return T.squeeze(out, 0) if unbatched else out


@autocast_to_low
def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D cross-correlation over (N, C, L) or (C, L), as torch.nn.functional.conv1d: a conv2d of height 1."""
    if not T.is_tensor(x) or x.ndim not in (2, 3) or not T.is_tensor(weight) or weight.ndim != 3:
        raise ShapeError(f"conv1d: expected a (N, C, L) or (C, L) input and a (out, in/groups, k) weight, got "
                         f"{tuple(getattr(x, 'shape', ()))} and {tuple(getattr(weight, 'shape', ()))}")
    padding2 = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
    out = conv2d(T.unsqueeze(x, -2), T.unsqueeze(weight, 2), bias, (1, _single(stride, "stride")), padding2,
                 (1, _single(dilation, "dilation")), groups)
    return T.squeeze(out, -2)


def _single(value, name: str) -> int:
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"conv1d: {name} must be an int, got {value!r}")
    return value


# ---------------------------------------------------------------- pooling

def _pool_args(kernel_size, stride, padding, dilation, op):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    dilation = _pair(dilation, "dilation", op)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ShapeError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    return kernel, stride, padding, dilation


def _ceil_extra(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """How much more padding the bottom/right needs for torch's ceil_mode output size: one more window
    when a partial one is left, unless it would start past the input and its left padding."""
    if not ceil_mode:
        return 0
    span = dilation * (kernel - 1) + 1
    room = size + 2 * padding - span
    if room < 0:
        return 0  # unfold2d reports the kernel larger than the input
    out = -(-room // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return max(0, (out - 1) * stride + span - (size + 2 * padding))


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, op):
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, dilation, op)
    extra = tuple(_ceil_extra(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
                  for i in range(2))
    return kernel, stride, padding, dilation, extra


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over each window; with return_indices also the position (into each H*W plane) of the
    first maximum of the window (NaN counts as the maximum), as torch."""
    op = "max_pool2d"
    x, unbatched = _batched(x, op)
    kernel, stride, padding, dilation, extra = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode, op)
    lowest = float("-inf") if x.dtype.is_floating_point else int(D.iinfo(x.dtype).min)
    cols, ho, wo = unfold2d(x, kernel, stride, padding, dilation, lowest, op, extra)
    out = T.amax(cols, 2)
    if not return_indices:
        return T.squeeze(out, 0) if unbatched else out
    where = T.argmax(cols, 2)                          # kernel position i * kw + j of the first maximum
    ki, kj = where // kernel[1], where % kernel[1]
    rows = T.iota((ho, wo), 0, device=x.device) * stride[0] - padding[0] + ki * dilation[0]
    cols_ = T.iota((ho, wo), 1, device=x.device) * stride[1] - padding[1] + kj * dilation[1]
    indices = rows * x.shape[3] + cols_
    if unbatched:
        return T.squeeze(out, 0), T.squeeze(indices, 0)
    return out, indices


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None):
    op = "avg_pool2d"
    x, unbatched = _batched(x, op)
    kernel, stride, padding, dilation, extra = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode, op)
    cols, ho, wo = unfold2d(x, kernel, stride, padding, dilation, 0.0, op, extra)
    total = T.sum(cols, 2)
    if divisor_override is not None:
        return _unbatch(total / float(divisor_override), unbatched)
    if extra == (0, 0) and (count_include_pad or padding == (0, 0)):
        return _unbatch(total / float(kernel[0] * kernel[1]), unbatched)
    # The divisor of each window, counted on a plane of ones: torch counts the padding with
    # count_include_pad, never the part ceil_mode adds past it.
    ones = T.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
    plane = T.pad_primitive(ones, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2),
                            1.0 if count_include_pad else 0.0)
    counts, _, _ = unfold2d(plane, kernel, stride, (0, 0), dilation, 0.0, op, extra)
    return _unbatch(total / T.sum(counts, 2), unbatched)


def _unbatch(out, unbatched: bool):
    return T.squeeze(out, 0) if unbatched else out


def _adaptive_windows(size_in: int, size_out: int, dtype) -> np.ndarray:
    """(size_out, size_in) averaging weights: output i averages inputs floor(i * n / m) up to
    ceil((i + 1) * n / m), torch's adaptive windows (they overlap when m does not divide n)."""
    weights = np.zeros((size_out, size_in), np.float64)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights.astype(dtype.np)


def adaptive_avg_pool2d(x, output_size):
    """The mean of each of torch's adaptive windows; `output_size` an int or a pair (None keeps
    that dim). Each spatial dim is averaged by one small matmul with its window weights."""
    op = "adaptive_avg_pool2d"
    x, unbatched = _batched(x, op)
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{op}: needs a floating point input, got {x.dtype.name}")
    sizes = (output_size,) * 2 if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(sizes) != 2 or not all(s is None or (isinstance(s, int) and s > 0) for s in sizes):
        raise ShapeError(f"{op}: output_size must be a positive int, None or a pair of them, got {output_size!r}")
    h, w = x.shape[2:]
    ho, wo = (h if sizes[0] is None else sizes[0]), (w if sizes[1] is None else sizes[1])
    out_dtype = x.dtype
    x = T.cast(x, compute_dtype(x))
    across_w = T.tensor(_adaptive_windows(w, wo, x.dtype).T, dtype=x.dtype, device=x.device)  # (W, Wo)
    down_h = T.tensor(_adaptive_windows(h, ho, x.dtype), dtype=x.dtype, device=x.device)       # (Ho, H)
    return _unbatch(T.cast(T.matmul(down_h, T.matmul(x, across_w)), out_dtype), unbatched)


# ---------------------------------------------------------------- interpolate

_LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}
_NEAREST = ("nearest", "nearest-exact")


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None, antialias: bool = False):
    """Resample the spatial dims of (N, C, *spatial) as torch.nn.functional.interpolate does, for
    'nearest', 'nearest-exact' and 'linear'/'bilinear'/'trilinear' (align_corners as torch: True maps
    corner pixel centres onto each other, False/None maps pixel areas and clamps at the border)."""
    x = input
    if not T.is_tensor(x):
        raise DTypeError(f"interpolate: expected a tensor, got {type(x).__name__}")
    spatial = x.ndim - 2
    if mode not in _LINEAR and mode not in _NEAREST:
        raise UnsupportedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                               f"bilinear, trilinear)")
    if not 1 <= spatial <= 3 or (mode in _LINEAR and _LINEAR[mode] != spatial):
        want = f"a {_LINEAR[mode] + 2}-D" if mode in _LINEAR else "a 3-D, 4-D or 5-D"
        raise ShapeError(f"interpolate: mode {mode!r} needs {want} (N, C, *spatial) input, got shape "
                         f"{tuple(x.shape)}")
    if mode in _NEAREST and align_corners is not None:
        raise InvalidValueError("interpolate: align_corners can only be set with the interpolating modes "
                                "linear, bilinear and trilinear")
    if antialias:
        raise UnsupportedError("interpolate: antialias=True is not supported")
    if mode in _LINEAR and not x.dtype.is_floating_point:
        raise DTypeError(f"interpolate: mode {mode!r} needs a floating point input, got {x.dtype.name}")
    sizes, scales = _output_sizes(x, size, scale_factor, recompute_scale_factor, spatial)
    out_dtype = x.dtype
    if mode in _LINEAR:
        x = T.cast(x, compute_dtype(x))
    # The last spatial dim first: torch blends the innermost neighbours first, so the sums agree.
    for axis in reversed(range(spatial)):
        dim, size_in, size_out, scale = 2 + axis, x.shape[2 + axis], sizes[axis], scales[axis]
        if mode in _NEAREST:
            x = T.index_select(x, dim, T.tensor(_nearest_sources(size_in, size_out, scale, mode == "nearest-exact")))
        else:
            x = _blend(x, dim, *_linear_sources(size_in, size_out, scale, bool(align_corners), x.dtype))
    return T.cast(x, out_dtype)


def _output_sizes(x, size, scale_factor, recompute_scale_factor, spatial: int) -> tuple:
    """(output sizes, the scales torch's coordinate maps use: the given factor, or None)."""
    if (size is None) == (scale_factor is None):
        raise InvalidValueError("interpolate: give exactly one of size and scale_factor")
    shape_in = tuple(x.shape[2:])
    if size is not None:
        sizes = (size,) * spatial if isinstance(size, int) else tuple(size)
        if len(sizes) != spatial or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ShapeError(f"interpolate: size must be a positive int or {spatial} of them, got {size!r}")
        return sizes, (None,) * spatial
    factors = (scale_factor,) * spatial if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(factors) != spatial or not all(f > 0 for f in factors):
        raise ShapeError(f"interpolate: scale_factor must be a positive number or {spatial} of them, got "
                         f"{scale_factor!r}")
    sizes = tuple(int(math.floor(float(n) * float(f))) for n, f in zip(shape_in, factors))
    if any(s <= 0 for s in sizes):
        raise ShapeError(f"interpolate: scale_factor {scale_factor!r} gives an empty output for input "
                         f"{tuple(x.shape)}")
    return sizes, ((None,) * spatial if recompute_scale_factor else tuple(float(f) for f in factors))


def _source_scale(size_in: int, size_out: int, scale, real):
    """torch's compute_scales_value: 1 / the given factor, else the size ratio, in `real` arithmetic."""
    if scale is not None and scale > 0:
        return real(1.0 / scale)
    return real(size_in) / real(size_out)


def _nearest_sources(size_in: int, size_out: int, scale, exact: bool) -> np.ndarray:
    # torch computes nearest positions in float32, floor(dst * scale) (or of dst + 0.5 when exact),
    # and for 'nearest' reads equal and doubled sizes exactly, whatever the factor said.
    if not exact and size_out in (size_in, 2 * size_in):
        return np.arange(size_out, dtype=np.int64) // (size_out // size_in)
    real = np.float32
    ratio = _source_scale(size_in, size_out, scale, real)
    dst = np.arange(size_out, dtype=real)
    src = np.floor(((dst + real(0.5)) if exact else dst) * ratio)
    return np.minimum(src.astype(np.int64), size_in - 1)


def _linear_sources(size_in: int, size_out: int, scale, align_corners: bool, dtype) -> tuple:
    """(low neighbour, high neighbour, their weights) per output position, as torch's linear
    upsampling computes them in its accumulation type (float32 for float32 and half inputs)."""
    real = np.float64 if dtype is D.float64 else np.float32
    dst = np.arange(size_out, dtype=real)
    if align_corners:
        ratio = real(size_in - 1) / real(size_out - 1) if size_out > 1 else real(0)
        src = ratio * dst
    else:
        ratio = _source_scale(size_in, size_out, scale, real)
        src = np.maximum(ratio * (dst + real(0.5)) - real(0.5), real(0))
    low = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    weight_high = np.clip(src - low.astype(real), 0, 1).astype(real)
    high = np.where(low < size_in - 1, low + 1, low)
    return low, high, (real(1) - weight_high).astype(real), weight_high


def _blend(x, dim: int, low, high, weight_low, weight_high):
    trailing = (1,) * (x.ndim - 1 - dim)

    def weights(w):
        return T.reshape(T.tensor(w, dtype=x.dtype, device=x.device), (len(w),) + trailing)
    a = T.index_select(x, dim, T.tensor(low))
    b = T.index_select(x, dim, T.tensor(high))
    return a * weights(weight_low) + b * weights(weight_high)
