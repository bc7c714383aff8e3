"""tritonflow.nn: convolution, pooling and upsampling modules over the functional ops.

Framework stage. The math is nn.functional's (written in nn/spatial.py: im2col views feeding a
matmul or a reduction); these modules hold the weights and the settings.
"""
from __future__ import annotations

from tritonflow.errors import ShapeError, UnsupportedError
from tritonflow.nn import functional as F
from tritonflow.nn.layers import WeightAndBias
from tritonflow.nn.modules import Module
from tritonflow.nn.spatial import _pair, _pool_args, unfold2d  # noqa: F401 (unfold2d: nn.conv.unfold2d, as before)
from tritonflow.nn.spatial import avg_pool2d, conv1d, conv2d, max_pool2d  # noqa: F401 (nn.conv.conv2d, as before)


class _Conv(WeightAndBias):
    """What Conv1d and Conv2d share: the checks, the settings they keep, their repr."""

    def _setup(self, name: str, in_channels: int, out_channels: int, kernel: tuple, stride, padding, dilation,
               groups: int, bias: bool, padding_mode: str, device, dtype) -> None:
        if padding_mode != "zeros":
            raise UnsupportedError(f"{name}: padding_mode {padding_mode!r} is not supported (only 'zeros')")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"{name}: in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups {groups}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, tuple(kernel)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self._add_weight_and_bias((out_channels, in_channels // groups) + tuple(kernel), bias, device, dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}")


class Conv2d(_Conv):
    """2-D convolution over (N, C, H, W); weight and bias initialised as in PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        self._setup("Conv2d", in_channels, out_channels, _pair(kernel_size, "kernel_size", "Conv2d"),
                    _pair(stride, "stride", "Conv2d"),
                    padding if isinstance(padding, str) else _pair(padding, "padding", "Conv2d"),
                    _pair(dilation, "dilation", "Conv2d"), groups, bias, padding_mode, device, dtype)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
    """1-D convolution over (N, C, L); weight and bias initialised as in PyTorch."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding=0,
                 dilation: int = 1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__()
        self._setup("Conv1d", in_channels, out_channels, (kernel_size,), stride, padding, dilation, groups, bias,
                    padding_mode, device, dtype)

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class MaxPool2d(Module):
    _repr_fields = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode
        _pool_args(kernel_size, stride, padding, dilation, "MaxPool2d")

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)


class AvgPool2d(Module):
    _repr_fields = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override
        _pool_args(kernel_size, stride, padding, 1, "AvgPool2d")

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)


class AdaptiveAvgPool2d(Module):
    _repr_fields = ("output_size",)

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


class Upsample(Module):
    """nn.Upsample: F.interpolate with fixed settings."""

    _repr_fields = ("size", "scale_factor", "mode")

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None) -> None:
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)
