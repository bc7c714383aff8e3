"""Op table: elementwise primitives — one entry per op, its type rule, meaning, gradient, Triton spelling.

The front end (tritonflow.api) promotes dtypes and casts before calling a primitive, so binary
primitives always see equal dtypes and float-only ops always see floats. float16 and bfloat16 are
computed in float32 and rounded once on the way out, on every backend.
"""
from __future__ import annotations

import math

import numpy as np

from tritonflow.ops.lazy_api import T
from tritonflow import dtypes as D
from tritonflow.errors import DTypeError
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import Kind, OpDef, register
from tritonflow.ops import special
from tritonflow.ops.samples import binary_samples, unary_samples
from tritonflow.ops.shapes import broadcast_shapes

FLOATS = ("float16", "bfloat16", "float32", "float64")
NUMERIC = FLOATS + ("int8", "int32", "int64")
ANY = NUMERIC + ("bool",)


# ---------------------------------------------------------------- type rules

def _check_dtype(op: str, t: TensorType, accepted: tuple) -> None:
    if t.dtype.name not in accepted:
        raise DTypeError(f"{op}: dtype {t.dtype.name} is not supported (accepts {', '.join(accepted)})")


def unary(name: str, accepted: tuple, out_dtype=None):
    def infer(types, attrs):
        (x,) = types
        _check_dtype(name, x, accepted)
        return TensorType(x.shape, out_dtype or x.dtype)
    return infer


def binary(name: str, accepted: tuple, out_dtype=None):
    def infer(types, attrs):
        a, b = types
        _check_dtype(name, a, accepted)
        _check_dtype(name, b, accepted)
        if a.dtype is not b.dtype:
            raise DTypeError(f"{name}: operand dtypes differ ({a.dtype.name} and {b.dtype.name})")
        return TensorType(broadcast_shapes(name, a.shape, b.shape), out_dtype or a.dtype)
    return infer


def infer_where(types, attrs):
    c, a, b = types
    if not c.dtype.is_bool:
        raise DTypeError(f"where: condition must be bool, got {c.dtype.name}")
    if a.dtype is not b.dtype:
        raise DTypeError(f"where: branch dtypes differ ({a.dtype.name} and {b.dtype.name})")
    return TensorType(broadcast_shapes("where", c.shape, a.shape, b.shape), a.dtype)


def infer_cast(types, attrs):
    (x,) = types
    return TensorType(x.shape, attrs["dtype"])


# ---------------------------------------------------------------- meanings

def in_f32(fn):
    """Apply a NumPy function computing float16/bfloat16 in float32 (the kernels do the same).

    `run.full_precision` is `fn` itself: what a caller that knows no operand is float16/bfloat16
    and already ignores floating-point errors may call instead (the graph evaluator does: entering
    np.errstate costs four times a small ufunc)."""
    def run(*arrays, **attrs):
        low = arrays and any(a.dtype in (np.float16, D.bfloat16.np) for a in arrays)
        if low:
            arrays = [a.astype(np.float32) if a.dtype.kind in "fV" else a for a in arrays]
        with np.errstate(all="ignore"):
            return fn(*arrays)
    run.full_precision = fn
    return run


def _sign(x):
    # (x > 0) - (x < 0), as PyTorch and the Triton template compute it: sign(NaN) is 0.
    one = np.ones((), x.dtype)
    zero = np.zeros((), x.dtype)
    return (np.where(x > 0, one, zero) - np.where(x < 0, one, zero)).astype(x.dtype)


def _floor_divide(a, b):
    if a.dtype.kind in "iu":
        zero = b == 0
        safe = np.where(zero, 1, b)
        return np.where(zero, 0 if a.dtype.kind in "iu" else np.nan, np.floor_divide(a, safe))
    return np.floor_divide(a, b)


def _remainder(a, b):
    if a.dtype.kind in "iu":
        zero = b == 0
        safe = np.where(zero, 1, b)
        return np.where(zero, 0, np.remainder(a, safe))
    return np.remainder(a, b)


def _pow(a, b):
    if a.dtype.kind in "iu":
        # Integer powers as PyTorch defines them: a negative exponent truncates 1 / a**|b| toward
        # zero, so it is 1 for a == 1, +-1 for a == -1 (by the exponent's parity) and 0 otherwise.
        positive = np.power(a, np.maximum(b, 0))
        one = np.ones((), a.dtype)
        odd = (b % 2) != 0
        negative = np.where(a == 1, one, np.where(a == -1, np.where(odd, -one, one), np.zeros((), a.dtype)))
        return np.where(b < 0, negative, positive).astype(a.dtype)
    return np.power(a, b)


def _round(x):
    return np.round(x)  # half to even, like torch.round


# ---------------------------------------------------------------- Triton spellings with dtype cases

def by_result_dtype(floating: str, other: str):
    """A spelling that differs between a floating-point result and an integer/bool one."""
    return lambda s: floating if s.out_dtype.is_floating_point else other


def by_operand_dtype(floating: str, other: str):
    """A spelling that differs between floating-point operands and integer ones."""
    return lambda s: floating if s.in_dtypes[0].is_floating_point else other


def _sqrt_triton(s) -> str:
    # tl.sqrt_rn takes float32 only; float64 tl.sqrt is already correctly rounded.
    return "tl.sqrt({0})" if s.out_dtype.name == "float64" else "tl.sqrt_rn({0})"


# Triton spells `-x` as `0 - x`, which gives +0.0 for x == 0.0; NumPy gives -0.0.
_NEG_TRITON = by_result_dtype("{0} * -1.0", "-{0}")
# Rounding an integer is the identity (the float intrinsics reject ints).
_ROUNDING = {name: by_result_dtype(text, "{0}") for name, text in
             (("floor", "tl.floor({0})"), ("ceil", "tl.ceil({0})"), ("round", "libdevice.nearbyint({0})"))}


# ---------------------------------------------------------------- unary entries

def _unary(name, numpy, vjp, triton, accepted=FLOATS, samples=None, out_dtype=None, differentiable=True):
    return register(OpDef(
        name=name, kind=Kind.ELEMENTWISE, infer=unary(name, accepted, out_dtype), numpy=numpy, vjp=vjp,
        triton=triton, samples=samples or unary_samples(), differentiable=differentiable,
        dtypes=accepted,
    ))


NEG = _unary("neg", np.negative, lambda g, out, x: (-g,), _NEG_TRITON, accepted=NUMERIC)
ABS = _unary("abs", np.abs, lambda g, out, x: (g * T.sign(x),), "tl.abs({0})", accepted=NUMERIC)
EXP = _unary("exp", in_f32(np.exp), lambda g, out, x: (g * out,), "tl.exp({0})")
EXP2 = _unary("exp2", in_f32(np.exp2), lambda g, out, x: (g * out * math.log(2.0),), "tl.exp2({0})")
LOG = _unary("log", in_f32(np.log), lambda g, out, x: (g / x,), "tl.log({0})",
             samples=unary_samples(0.05, 4.0))
LOG2 = _unary("log2", in_f32(np.log2), lambda g, out, x: (g / (x * math.log(2.0)),), "tl.log2({0})",
              samples=unary_samples(0.05, 4.0))
LOG1P = _unary("log1p", in_f32(np.log1p), lambda g, out, x: (g / (x + 1.0),), "libdevice.log1p({0})",
               samples=unary_samples(-0.9, 3.0))
EXPM1 = _unary("expm1", in_f32(np.expm1), lambda g, out, x: (g * (out + 1.0),), "libdevice.expm1({0})")
SQRT = _unary("sqrt", in_f32(np.sqrt), lambda g, out, x: (g / (out * 2.0),), _sqrt_triton,
              samples=unary_samples(0.05, 4.0))
RSQRT = _unary("rsqrt", in_f32(lambda x: 1.0 / np.sqrt(x)), lambda g, out, x: (g * out * out * out * -0.5,),
               "libdevice.rsqrt({0})", samples=unary_samples(0.05, 4.0))
SIN = _unary("sin", in_f32(np.sin), lambda g, out, x: (g * T.cos(x),), "tl.sin({0})")
COS = _unary("cos", in_f32(np.cos), lambda g, out, x: (-(g * T.sin(x)),), "tl.cos({0})")
TANH = _unary("tanh", in_f32(np.tanh), lambda g, out, x: (g * (1.0 - out * out),), "libdevice.tanh({0})")
SIGMOID = _unary("sigmoid", in_f32(special.sigmoid), lambda g, out, x: (g * out * (1.0 - out),), "tl.sigmoid({0})")
ERF = _unary("erf", in_f32(special.erf), lambda g, out, x: (g * T.exp(-(x * x)) * (2.0 / math.sqrt(math.pi)),),
             "tl.erf({0})")
RELU = _unary("relu", lambda x: np.maximum(x, np.zeros((), x.dtype)),
              lambda g, out, x: (T.where(x > 0, g, T.zeros_like(g)),), "tl.maximum({0}, 0)", accepted=NUMERIC)
FLOOR = _unary("floor", np.floor, lambda g, out, x: (T.zeros_like(g),), _ROUNDING["floor"], accepted=NUMERIC)
CEIL = _unary("ceil", np.ceil, lambda g, out, x: (T.zeros_like(g),), _ROUNDING["ceil"], accepted=NUMERIC)
ROUND = _unary("round", _round, lambda g, out, x: (T.zeros_like(g),), _ROUNDING["round"],
               accepted=NUMERIC)
SIGN = _unary("sign", _sign, lambda g, out, x: (T.zeros_like(g),), "({0} > 0).to({dtype}) - ({0} < 0).to({dtype})",
              accepted=NUMERIC)
RECIPROCAL = _unary("reciprocal", in_f32(lambda x: 1.0 / x), lambda g, out, x: (-(g * out * out),), "1.0 / {0}",
                    samples=unary_samples(0.2, 3.0))
LOGICAL_NOT = _unary("logical_not", np.logical_not, None, "{0} == 0", accepted=ANY, out_dtype=D.bool_,
                     differentiable=False)
ISNAN = _unary("isnan", np.isnan, None, "{0} != {0}", accepted=FLOATS, out_dtype=D.bool_, differentiable=False)
ISINF = _unary("isinf", np.isinf, None, "tl.abs({0}) == float(\"inf\")", accepted=FLOATS, out_dtype=D.bool_,
               differentiable=False)
ISFINITE = _unary("isfinite", np.isfinite, None, "tl.abs({0}) < float(\"inf\")", accepted=FLOATS,
                  out_dtype=D.bool_, differentiable=False)


def _cast_numpy(x, dtype):
    if dtype.is_integer and x.dtype.kind in "fV":
        with np.errstate(all="ignore"):
            return np.trunc(x.astype(np.float64)).astype(dtype.np)
    return x.astype(dtype.np)


def _cast_triton(s) -> str:
    if s.out_dtype.is_bool:
        return "{0} != 0"
    if not s.in_dtypes[0].is_bool and s.in_types[0] == s.out_storage == s.out_type:
        return "{0}"  # already held in the target type (a float16 is held in float32)
    text = "{0}.to(tl.int8)" if s.in_dtypes[0].is_bool else "{0}"
    if s.out_dtype.name == "bfloat16" and s.in_types[0] != "tl.float32":
        # Through float32, as ml_dtypes rounds (the spec); Triton's interpreter also converts
        # only float32 to bfloat16 by value (from ints and float64 it reinterprets the bits).
        text += ".to(tl.float32)"
    text += f".to({s.out_storage})"
    if s.out_storage != s.out_type:
        text += f".to({s.out_type})"  # round to float16/bfloat16 now, compute on in float32
    return text


def _cast_vjp(g, out, x, dtype):
    if not x.dtype.is_floating_point:
        return (None,)
    return (T.cast(g, x.dtype),)


CAST = register(OpDef(
    name="cast", kind=Kind.ELEMENTWISE, infer=infer_cast, numpy=_cast_numpy, vjp=_cast_vjp,
    triton=_cast_triton, samples=lambda dt: [([a], {"dtype": D.float32}) for (a,), _ in unary_samples()(dt)],
    dtypes=ANY,
))


# ---------------------------------------------------------------- binary entries

def _binary(name, numpy, vjp, triton, accepted=NUMERIC, samples=None, out_dtype=None, differentiable=True):
    return register(OpDef(
        name=name, kind=Kind.ELEMENTWISE, infer=binary(name, accepted, out_dtype), numpy=numpy, vjp=vjp,
        triton=triton, samples=samples or binary_samples(), differentiable=differentiable,
        dtypes=accepted,
    ))


def _minmax_vjp(pick_left):
    def vjp(g, out, a, b):
        left = pick_left(a, b)
        zero = T.zeros_like(g)
        return (T.where(left, g, zero), T.where(left, zero, g))
    return vjp


def _pow_vjp(g, out, a, b):
    ga = g * b * T.pow(a, b - 1.0)
    safe_log = T.log(T.where(a > 0, a, T.ones_like(a)))
    gb = g * out * safe_log
    return (ga, gb)


ADD = _binary("add", np.add, lambda g, out, a, b: (g, g), "{0} + {1}", accepted=ANY)
SUB = _binary("sub", np.subtract, lambda g, out, a, b: (g, -g), "{0} - {1}")
MUL = _binary("mul", np.multiply, lambda g, out, a, b: (g * b, g * a), "{0} * {1}", accepted=ANY)
DIV = _binary("div", in_f32(np.true_divide), lambda g, out, a, b: (g / b, -(g * out / b)), "{0} / {1}",
              accepted=FLOATS, samples=binary_samples(nonzero_rhs=True, low_rhs=0.5, high_rhs=3.0))
FLOOR_DIVIDE = _binary("floor_divide", in_f32(_floor_divide),
                       lambda g, out, a, b: (T.zeros_like(a), T.zeros_like(b)),
                       by_operand_dtype("th.floor_divide_float({0}, {1})", "th.floor_divide_int({0}, {1})"),
                       samples=binary_samples(nonzero_rhs=True), differentiable=False)
REMAINDER = _binary("remainder", in_f32(_remainder),
                    lambda g, out, a, b: (g, -(g * T.floor_divide(a, b))),
                    by_operand_dtype("th.remainder_float({0}, {1})", "th.remainder_int({0}, {1})"),
                    samples=binary_samples(nonzero_rhs=True))
POW = _binary("pow", in_f32(_pow), _pow_vjp, by_operand_dtype("libdevice.pow({0}, {1})", "th.pow_int({0}, {1})"),
              samples=binary_samples(low=0.2, high=3.0, low_rhs=-2.0, high_rhs=2.0))
MAXIMUM = _binary("maximum", np.maximum, _minmax_vjp(lambda a, b: a >= b), "th.maximum({0}, {1})")
MINIMUM = _binary("minimum", np.minimum, _minmax_vjp(lambda a, b: a <= b), "th.minimum({0}, {1})")

_CMP = dict(accepted=ANY, out_dtype=D.bool_, differentiable=False)
EQ = _binary("eq", np.equal, None, "{0} == {1}", **_CMP)
NE = _binary("ne", np.not_equal, None, "{0} != {1}", **_CMP)
LT = _binary("lt", np.less, None, "{0} < {1}", **_CMP)
LE = _binary("le", np.less_equal, None, "{0} <= {1}", **_CMP)
GT = _binary("gt", np.greater, None, "{0} > {1}", **_CMP)
GE = _binary("ge", np.greater_equal, None, "{0} >= {1}", **_CMP)
LOGICAL_AND = _binary("logical_and", np.logical_and, None, "({0} != 0) & ({1} != 0)", **_CMP)
LOGICAL_OR = _binary("logical_or", np.logical_or, None, "({0} != 0) | ({1} != 0)", **_CMP)
LOGICAL_XOR = _binary("logical_xor", np.logical_xor, None, "({0} != 0) ^ ({1} != 0)", **_CMP)


def _where_samples(dtype):
    rng = np.random.default_rng(2)
    from tritonflow.ops.samples import random_array
    out = []
    for sc, sa, sb in [((), (), ()), ((4,), (4,), (4,)), ((3, 1), (1, 5), (3, 5)), ((2, 3), (3,), ())]:
        out.append(([np.asarray(rng.random(sc) < 0.5), random_array(sa, dtype, rng), random_array(sb, dtype, rng)], {}))
    return out


def _where_vjp(g, out, c, a, b):
    zero = T.zeros_like(g)
    return (None, T.where(c, g, zero), T.where(c, zero, g))


WHERE = register(OpDef(
    name="where", kind=Kind.ELEMENTWISE, infer=infer_where, numpy=np.where, vjp=_where_vjp,
    triton="tl.where({0}, {1}, {2})", samples=_where_samples, dtypes=ANY,
))
