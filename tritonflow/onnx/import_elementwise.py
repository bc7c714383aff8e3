"""ONNX import stage: elementwise operators and activations, written with tritonflow's ops.

Each handler keeps ONNX's meaning where tritonflow's op differs: integer Div truncates toward
zero, Mod with fmod=1 takes the dividend's sign, Pow keeps the base's type.
"""
from __future__ import annotations

import tritonflow.api as T
import tritonflow.nn.functional as F
from tritonflow.onnx.import_registry import handles
from tritonflow.onnx.types import dtype_of_onnx

_SAME_NAME = {"Abs": T.abs, "Neg": T.neg, "Exp": T.exp, "Log": T.log, "Sqrt": T.sqrt, "Reciprocal": T.reciprocal,
              "Sin": T.sin, "Cos": T.cos, "Tanh": T.tanh, "Sigmoid": T.sigmoid, "Erf": T.erf, "Relu": T.relu,
              "Floor": T.floor, "Ceil": T.ceil, "Round": T.round, "Sign": T.sign, "Not": T.logical_not,
              "IsNaN": T.isnan}
_BINARY = {"Add": T.add, "Sub": T.sub, "Mul": T.mul, "Equal": T.eq, "Greater": T.gt, "GreaterOrEqual": T.ge,
           "Less": T.lt, "LessOrEqual": T.le, "And": T.logical_and, "Or": T.logical_or, "Xor": T.logical_xor}


def _unary(fn):
    return lambda call: fn(call.tensor(0))


def _binary(fn):
    return lambda call: fn(call.tensor(0), call.tensor(1))


for _name, _fn in _SAME_NAME.items():
    handles(_name)(_unary(_fn))
for _name, _fn in _BINARY.items():
    handles(_name)(_binary(_fn))


@handles("Identity")
def identity(call):
    return call.tensor(0)


@handles("Tan")
def tan(call):
    x = call.tensor(0)
    return T.sin(x) / T.cos(x)


@handles("Sinh", "Cosh")
def hyperbolic(call):
    x = call.tensor(0)
    e, inverse = T.exp(x), T.exp(-x)
    return ((e - inverse) if call.op_type == "Sinh" else (e + inverse)) * 0.5


@handles("IsInf")
def isinf(call):
    x = call.tensor(0)
    result = T.isinf(x)
    if not call.attr("detect_negative", 1):
        result = T.logical_and(result, x > 0)
    if not call.attr("detect_positive", 1):
        result = T.logical_and(result, x < 0)
    return result


@handles("Div")
def div(call):
    a, b = call.tensor(0), call.tensor(1)
    if a.dtype.is_floating_point:
        return a / b
    # Integer division truncates toward zero in ONNX (C's rule); floor_divide rounds down.
    q = T.floor_divide(a, b)
    inexact = T.logical_and(T.remainder(a, b) != 0, T.logical_xor(a < 0, b < 0))
    return T.where(inexact, q + 1, q)


@handles("Mod")
def mod(call):
    a, b = call.tensor(0), call.tensor(1)
    r = T.remainder(a, b)                 # the divisor's sign (fmod=0)
    if not call.attr("fmod", 0):
        return r
    # fmod=1 is C's fmod: the dividend's sign.
    return T.where(T.logical_and(r != 0, T.logical_xor(r < 0, a < 0)), r - b, r)


@handles("Pow")
def power(call):
    base, exponent = call.tensor(0), call.tensor(1)
    result = T.pow(base, exponent)
    return result if result.dtype is base.dtype else T.cast(result, base.dtype)


@handles("Max", "Min", "Sum", "Mean")
def variadic(call):
    fn = {"Max": T.maximum, "Min": T.minimum, "Sum": T.add, "Mean": T.add}[call.op_type]
    values = call.tensors()
    result = values[0]
    for value in values[1:]:
        result = fn(result, value)
    if call.op_type == "Mean":
        result = result / float(len(values))
    return result


@handles("Where")
def where(call):
    return T.where(call.tensor(0), call.tensor(1), call.tensor(2))


@handles("Cast")
def cast(call):
    return T.cast(call.tensor(0), dtype_of_onnx(call.attr("to"), call.label))


@handles("CastLike")
def cast_like(call):
    return T.cast(call.tensor(0), call.tensor(1).dtype)


@handles("Clip")
def clip(call):
    x = call.tensor(0)
    low = call.tensor(1) if call.opset >= 11 else call.attr("min")
    high = call.tensor(2) if call.opset >= 11 else call.attr("max")
    if low is not None:
        x = T.maximum(x, T.cast(low, x.dtype) if T.is_tensor(low) else T.full((), low, dtype=x.dtype))
    if high is not None:
        x = T.minimum(x, T.cast(high, x.dtype) if T.is_tensor(high) else T.full((), high, dtype=x.dtype))
    return x


# ---------------------------------------------------------------- activations

@handles("LeakyRelu")
def leaky_relu(call):
    x = call.tensor(0)
    return T.where(x < 0, x * call.attr("alpha", 0.01), x)


@handles("PRelu")
def prelu(call):
    x, slope = call.tensor(0), call.tensor(1)
    return T.where(x < 0, x * slope, x)


def _exp_minus_one(x, alpha):
    return (T.exp(x) - 1.0) * alpha


@handles("Elu")
def elu(call):
    x = call.tensor(0)
    return T.where(x < 0, _exp_minus_one(x, call.attr("alpha", 1.0)), x)


@handles("Selu")
def selu(call):
    x = call.tensor(0)
    alpha, gamma = call.attr("alpha", 1.67326319217681884765625), call.attr("gamma", 1.05070102214813232421875)
    return T.where(x <= 0, _exp_minus_one(x, alpha), x) * gamma


@handles("Celu")
def celu(call):
    x = call.tensor(0)
    alpha = call.attr("alpha", 1.0)
    return T.relu(x) + T.minimum(T.zeros_like(x), _exp_minus_one(x / alpha, alpha))


def _hard_sigmoid(x, alpha, beta):
    return T.clamp(x * alpha + beta, 0.0, 1.0)


@handles("HardSigmoid")
def hard_sigmoid(call):
    return _hard_sigmoid(call.tensor(0), call.attr("alpha", 0.2), call.attr("beta", 0.5))


@handles("HardSwish")
def hard_swish(call):
    x = call.tensor(0)
    return x * _hard_sigmoid(x, 1.0 / 6.0, 0.5)


@handles("ThresholdedRelu")
def thresholded_relu(call):
    x = call.tensor(0)
    return T.where(x > call.attr("alpha", 1.0), x, T.zeros_like(x))


def _softplus(x):
    return T.relu(x) + T.log1p(T.exp(-T.abs(x)))   # log(1 + e^x) without overflow


@handles("Softplus")
def softplus(call):
    return _softplus(call.tensor(0))


@handles("Softsign")
def softsign(call):
    x = call.tensor(0)
    return x / (T.abs(x) + 1.0)


@handles("Mish")
def mish(call):
    x = call.tensor(0)
    return x * T.tanh(_softplus(x))


@handles("Gelu")
def gelu(call):
    return F.gelu(call.tensor(0), approximate=call.attr("approximate", "none"))


@handles("Swish")
def swish(call):
    x = call.tensor(0)
    return x * T.sigmoid(x * call.attr("alpha", 1.0))


@handles("Shrink")
def shrink(call):
    x = call.tensor(0)
    bias, lambd = call.attr("bias", 0.0), call.attr("lambd", 0.5)
    return T.where(x < -lambd, x + bias, T.where(x > lambd, x - bias, T.zeros_like(x)))

