"""ONNX export stage: elementwise primitives as ONNX operators.

One to one where ONNX has the op with tritonflow's meaning; otherwise a short decomposition that
keeps the meaning exactly (floor division and remainder of integers, integer powers with negative
exponents, bool arithmetic, the ops ONNX lacks: exp2, log2, log1p, expm1, rsqrt, isfinite).
Each emitter is `(builder, ir_node, input_names) -> output name`.
"""
from __future__ import annotations

import math

from tritonflow import dtypes as D
from tritonflow.onnx.types import onnx_type_of

# ONNX op types with exactly tritonflow's meaning on the dtypes the IR hands them.
DIRECT_UNARY = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin",
                "cos": "Cos", "tanh": "Tanh", "sigmoid": "Sigmoid", "erf": "Erf", "relu": "Relu",
                "reciprocal": "Reciprocal", "isnan": "IsNaN", "isinf": "IsInf"}
DIRECT_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max", "minimum": "Min",
                 "eq": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual"}
ROUNDING = {"floor": "Floor", "ceil": "Ceil", "round": "Round"}
LOGICAL = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}


def _dtype(node, index: int = 0):
    return node.inputs[index].type.dtype


def cast(b, name: str, dtype) -> str:
    return b.op("Cast", [name], to=onnx_type_of(dtype))


def as_bool(b, node, ins: list, index: int) -> str:
    return ins[index] if _dtype(node, index).is_bool else cast(b, ins[index], D.bool_)


def _unary(op_type):
    return lambda b, node, ins: b.op(op_type, ins)


def _binary(op_type):
    def emit(b, node, ins):
        if _dtype(node).is_bool and op_type in ("Add", "Mul", "Max", "Min"):
            # bool + bool is logical or, bool * bool logical and (NumPy's and PyTorch's meaning).
            return b.op({"Add": "Or", "Mul": "And", "Max": "Or", "Min": "And"}[op_type], ins)
        if _dtype(node).is_bool and op_type in ("Less", "LessOrEqual", "Greater", "GreaterOrEqual"):
            ins = [cast(b, i, D.int8) for i in ins]  # ONNX orders numbers only
        return b.op(op_type, ins)
    return emit


def _rounding(op_type):
    def emit(b, node, ins):
        if not _dtype(node).is_floating_point:
            return b.op("Identity", ins)  # rounding an integer is the integer
        return b.op(op_type, ins)
    return emit


def _logical(op_type):
    return lambda b, node, ins: b.op(op_type, [as_bool(b, node, ins, 0), as_bool(b, node, ins, 1)])


def _scaled(b, node, name: str, factor: float) -> str:
    return b.op("Mul", [name, b.scalar(factor, _dtype(node))])


def emit_exp2(b, node, ins):
    return b.op("Pow", [b.scalar(2.0, _dtype(node)), ins[0]])


def emit_log2(b, node, ins):
    return _scaled(b, node, b.op("Log", ins), 1.0 / math.log(2.0))


def emit_log1p(b, node, ins):
    return b.op("Log", [b.op("Add", [ins[0], b.scalar(1.0, _dtype(node))])])


def emit_expm1(b, node, ins):
    return b.op("Sub", [b.op("Exp", ins), b.scalar(1.0, _dtype(node))])


def emit_rsqrt(b, node, ins):
    return b.op("Reciprocal", [b.op("Sqrt", ins)])


def emit_sign(b, node, ins):
    # (x > 0) - (x < 0), as tritonflow defines it: sign(NaN) is 0 (ONNX's Sign keeps the NaN).
    dtype = _dtype(node)
    zero = b.scalar(0, dtype)
    positive = cast(b, b.op("Greater", [ins[0], zero]), dtype)
    negative = cast(b, b.op("Less", [ins[0], zero]), dtype)
    return b.op("Sub", [positive, negative])


def emit_logical_not(b, node, ins):
    return b.op("Not", [as_bool(b, node, ins, 0)])


def emit_isfinite(b, node, ins):
    return b.op("Not", [b.op("Or", [b.op("IsNaN", ins), b.op("IsInf", ins)])])


def emit_cast(b, node, ins):
    return cast(b, ins[0], node.type.dtype)


def emit_ne(b, node, ins):
    return b.op("Not", [b.op("Equal", ins)])


def emit_where(b, node, ins):
    return b.op("Where", ins)


def _zero_divisor(b, node, ins) -> tuple:
    """(b == 0, a divisor with the zeros replaced by ones): integer division by zero is 0 in tritonflow."""
    dtype = _dtype(node, 1)
    is_zero = b.op("Equal", [ins[1], b.scalar(0, dtype)])
    return is_zero, b.op("Where", [is_zero, b.scalar(1, dtype), ins[1]])


def emit_floor_divide(b, node, ins):
    dtype = _dtype(node)
    if dtype.is_floating_point:
        return b.op("Floor", [b.op("Div", ins)])
    is_zero, divisor = _zero_divisor(b, node, ins)
    # ONNX's integer Mod (fmod=0) takes the divisor's sign, so a - mod is an exact multiple of b.
    exact = b.op("Sub", [ins[0], b.op("Mod", [ins[0], divisor], fmod=0)])
    return b.op("Where", [is_zero, b.scalar(0, dtype), b.op("Div", [exact, divisor])])


def emit_remainder(b, node, ins):
    dtype = _dtype(node)
    if not dtype.is_floating_point:
        is_zero, divisor = _zero_divisor(b, node, ins)
        return b.op("Where", [is_zero, b.scalar(0, dtype), b.op("Mod", [ins[0], divisor], fmod=0)])
    # Python's (and NumPy's) float remainder has the divisor's sign: fmod, moved by one divisor
    # when the signs differ.
    zero = b.scalar(0.0, dtype)
    r = b.op("Mod", ins, fmod=1)
    signs_differ = b.op("Xor", [b.op("Less", [r, zero]), b.op("Less", [ins[1], zero])])
    move = b.op("And", [b.op("Not", [b.op("Equal", [r, zero])]), signs_differ])
    return b.op("Where", [move, b.op("Add", [r, ins[1]]), r])


def emit_pow(b, node, ins):
    dtype = _dtype(node)
    if dtype.is_floating_point:
        return b.op("Pow", ins)
    # Integer powers as tritonflow (and PyTorch) define them: a negative exponent gives 1 / a**|b|
    # truncated toward zero: 1 for a == 1, +-1 for a == -1 by parity, 0 otherwise.
    zero, one = b.scalar(0, dtype), b.scalar(1, dtype)
    positive = b.op("Pow", [ins[0], b.op("Max", [ins[1], zero])])
    odd = b.op("Not", [b.op("Equal", [b.op("Mod", [ins[1], b.scalar(2, dtype)], fmod=0), zero])])
    minus_one = b.op("Where", [odd, b.scalar(-1, dtype), one])
    is_minus_one = b.op("Equal", [ins[0], b.scalar(-1, dtype)])
    negative = b.op("Where", [b.op("Equal", [ins[0], one]), one,
                              b.op("Where", [is_minus_one, minus_one, zero])])
    return b.op("Where", [b.op("Less", [ins[1], zero]), negative, positive])


EMITTERS = {name: _unary(op_type) for name, op_type in DIRECT_UNARY.items()}
EMITTERS.update({name: _binary(op_type) for name, op_type in DIRECT_BINARY.items()})
EMITTERS.update({name: _rounding(op_type) for name, op_type in ROUNDING.items()})
EMITTERS.update({name: _logical(op_type) for name, op_type in LOGICAL.items()})
EMITTERS.update({
    "exp2": emit_exp2, "log2": emit_log2, "log1p": emit_log1p, "expm1": emit_expm1, "rsqrt": emit_rsqrt,
    "sign": emit_sign, "logical_not": emit_logical_not, "isfinite": emit_isfinite, "cast": emit_cast,
    "ne": emit_ne, "where": emit_where, "floor_divide": emit_floor_divide, "remainder": emit_remainder,
    "pow": emit_pow,
})
