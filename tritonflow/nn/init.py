"""tritonflow.nn.init: weight initialisation as PyTorch does it, from tritonflow's seeded generator.

Framework stage. Each function fills its tensor in place (under no_grad) and returns it. Random
numbers come from `tritonflow.rand`/`randn` (Philox), so `tritonflow.manual_seed(s)` makes model
initialisation reproducible on every device.
"""
from __future__ import annotations

import math

import tritonflow.api as T
from tritonflow.autograd import no_grad
from tritonflow.errors import ShapeError, UnsupportedError


def _fill(tensor, value):
    with no_grad():
        value = T.cast(value, tensor.dtype)
        if value.device != tensor.device:
            value = T.to(value, tensor.device)
        tensor.copy_(value)
    return tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise UnsupportedError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ShapeError(f"init: fan in and fan out need at least 2 dims, got shape {tuple(tensor.shape)}")
    receptive = 1
    for d in tensor.shape[2:]:
        receptive *= d
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    return _fill(tensor, T.rand(tuple(tensor.shape)) * (b - a) + a)


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    return _fill(tensor, T.randn(tuple(tensor.shape)) * std + mean)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """Normal(mean, std) truncated to [a, b], by inverting the normal CDF of a uniform sample."""
    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0
    lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
    u = T.rand(tuple(tensor.shape), dtype="float64") * (hi - lo) + lo
    # erfinv by Newton steps on erf (no erfinv primitive): start from a rational approximation.
    y = u * 2.0 - 1.0
    y = T.clamp(y, -1 + 1e-12, 1 - 1e-12)
    w = -T.log((1.0 - y) * (1.0 + y))
    x = T.sign(y) * T.sqrt(T.sqrt((2 / (math.pi * 0.147) + w / 2) ** 2 - w / 0.147) - (2 / (math.pi * 0.147) + w / 2))
    for _ in range(3):
        x = x - (T.erf(x) - y) / (T.exp(-(x * x)) * (2.0 / math.sqrt(math.pi)))
    value = T.clamp(x * (std * math.sqrt(2.0)) + mean, a, b)
    return _fill(tensor, value)


def constant_(tensor, val: float):
    return _fill(tensor, T.full(tuple(tensor.shape), val, dtype=tensor.dtype))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain: float = 1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _fan(tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise UnsupportedError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std)


def linear_default_(weight, bias=None) -> None:
    """PyTorch's default initialisation of Linear and Conv layers: kaiming_uniform_ with a = sqrt(5)
    on the weight, and the bias uniform in +-1/sqrt(fan_in)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)
