"""tritonflow.nn: 2-D convolution and pooling, written as views (im2col) plus a matmul or a reduction.

Framework stage. `unfold2d` pads the input and takes one strided slice per kernel position;
stacking them gives (N, C, kh*kw, Ho, Wo) without any gather, so the lowering sees only movement
ops feeding a matmul (convolution) or a reduction (pooling). Gradients come from the slice, pad
and cat rules of the op table.
"""
from __future__ import annotations

import tritonflow.api as T
from tritonflow import dtypes as D
from tritonflow.errors import DTypeError, ShapeError, UnsupportedError
from tritonflow.nn.layers import WeightAndBias
from tritonflow.nn.modules import Module


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


def unfold2d(x, kernel, stride, padding, dilation, pad_value, op: str):
    """(N, C, H, W) -> (N, C, kh*kw, Ho, Wo): the input patch under each kernel position."""
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    n, c, h, w = x.shape
    if ph or pw:
        x = T.pad_primitive(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), pad_value)
    hp, wp = h + 2 * ph, w + 2 * pw
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


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D cross-correlation, as torch.nn.functional.conv2d (padding may be 'valid' or 'same')."""
    op = "conv2d"
    x, unbatched = _batched(x, op)
    if weight.ndim != 4:
        raise ShapeError(f"{op}: weight must be 4-D (out, in/groups, kh, kw), got {tuple(weight.shape)}")
    out_ch, in_per_group, kh, kw = weight.shape
    n, c, h, w = x.shape
    if c % groups or out_ch % groups or c // groups != in_per_group:
        raise ShapeError(f"{op}: input has {c} channels but weight {tuple(weight.shape)} with groups={groups} "
                         f"expects {in_per_group * groups}")
    stride, dilation = _pair(stride, "stride", op), _pair(dilation, "dilation", op)
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        if stride != (1, 1):
            raise UnsupportedError(f"{op}: padding='same' needs stride 1, got {stride}")
        total = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
        if total[0] % 2 or total[1] % 2:
            raise UnsupportedError(f"{op}: padding='same' with an even kernel {(kh, kw)} is not supported")
        padding = (total[0] // 2, total[1] // 2)
    padding = _pair(padding, "padding", op)
    cols, ho, wo = unfold2d(x, (kh, kw), stride, padding, dilation, 0.0, op)
    k = in_per_group * kh * kw
    cols = T.reshape(cols, (n, groups, k, ho * wo))
    wmat = T.reshape(weight, (groups, out_ch // groups, k))
    out = T.matmul(wmat, cols)                                    # (n, groups, out/groups, ho*wo)
    out = T.reshape(out, (n, out_ch, ho, wo))
    if bias is not None:
        out = out + T.reshape(bias, (out_ch, 1, 1))
    return T.squeeze(out, 0) if unbatched else out


def _pool_args(kernel_size, stride, padding, dilation, ceil_mode, op):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == () else _pair(stride, "stride", op)
    padding = _pair(padding, "padding", op)
    dilation = _pair(dilation, "dilation", op)
    if ceil_mode:
        raise UnsupportedError(f"{op}: ceil_mode=True is not supported")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ShapeError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
    return kernel, stride, padding, dilation


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    op = "max_pool2d"
    x, unbatched = _batched(x, op)
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, dilation, ceil_mode, op)
    lowest = float("-inf") if x.dtype.is_floating_point else int(D.iinfo(x.dtype).min)
    cols, _, _ = unfold2d(x, kernel, stride, padding, dilation, lowest, op)
    out = T.amax(cols, 2)
    return T.squeeze(out, 0) if unbatched else out


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None):
    op = "avg_pool2d"
    x, unbatched = _batched(x, op)
    kernel, stride, padding, dilation = _pool_args(kernel_size, stride, padding, 1, ceil_mode, op)
    cols, ho, wo = unfold2d(x, kernel, stride, padding, dilation, 0.0, op)
    total = T.sum(cols, 2)
    if divisor_override is not None:
        out = total / float(divisor_override)
    elif count_include_pad or padding == (0, 0):
        out = total / float(kernel[0] * kernel[1])
    else:
        # The number of real (unpadded) elements under each window, counted on a tensor of ones.
        ones = T.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        counts, _, _ = unfold2d(ones, kernel, stride, padding, dilation, 0.0, op)
        out = total / T.sum(counts, 2)
    return T.squeeze(out, 0) if unbatched else out


class Conv2d(WeightAndBias):
    """2-D convolution over (N, C, H, W); weight and bias initialised as in PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        if padding_mode != "zeros":
            raise UnsupportedError(f"Conv2d: padding_mode {padding_mode!r} is not supported (only 'zeros')")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups {groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = _pair(stride, "stride", "Conv2d")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", "Conv2d")
        self.dilation = _pair(dilation, "dilation", "Conv2d")
        self.groups = groups
        self._add_weight_and_bias((out_channels, in_channels // groups) + self.kernel_size, bias, device, dtype)

    def forward(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class MaxPool2d(Module):
    _repr_fields = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.ceil_mode = ceil_mode
        _pool_args(kernel_size, stride, padding, dilation, ceil_mode, "MaxPool2d")

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class AvgPool2d(Module):
    _repr_fields = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override
        _pool_args(kernel_size, stride, padding, 1, ceil_mode, "AvgPool2d")

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                          self.divisor_override)
