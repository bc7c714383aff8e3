"""Every elementwise function and Python operator, eager and jitted, against torch on CPU.

Mixed dtypes and Python scalars go through the promotion table, so the result dtype is checked
against torch's too.
"""
from __future__ import annotations

import operator

import numpy as np
import pytest
import torch

import tritonflow as tf

from core_torch import check, from_torch, rand, to_torch
from helpers import assert_close

UNARY = ["neg", "abs", "exp", "exp2", "log", "log2", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
         "sigmoid", "erf", "relu", "floor", "ceil", "round", "sign", "reciprocal", "isnan", "isinf", "isfinite",
         "logical_not"]
POSITIVE = {"log", "log2", "sqrt", "rsqrt", "reciprocal"}


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int32"])
@pytest.mark.parametrize("name", UNARY)
def test_unary_function_and_method(name, dtype):
    low, high = (0.2, 4.0) if name in POSITIVE else (-0.9 if name == "log1p" else -3.0, 3.0)
    x = rand((3, 5), dtype, low, high)
    if dtype == "int32" and name in POSITIVE | {"log1p"}:
        x = rand((3, 5), dtype, 1, 5)
    torch_fn = getattr(torch, name)
    check(getattr(tf, name), torch_fn, x)
    if name not in ("isnan", "isinf", "isfinite", "erf", "exp2") or hasattr(torch.Tensor, name):
        check(lambda t: getattr(t, name)(), torch_fn, x)


BINARY = ["add", "sub", "mul", "div", "floor_divide", "remainder", "pow", "maximum", "minimum", "eq", "ne",
          "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor"]
DTYPE_PAIRS = [("float32", "float32"), ("float16", "float32"), ("int32", "float16"), ("int32", "int64"),
               ("bfloat16", "float16"), ("bool", "int32"), ("float64", "bfloat16")]


# torch (and tritonflow: test_bool_arithmetic_is_rejected) refuse bool operands for these.
NO_BOOL = ("sub", "floor_divide", "remainder", "pow", "maximum", "minimum")


@pytest.mark.parametrize("name,dtypes", [pytest.param(n, p, id=f"{n}-{'-'.join(p)}") for n in BINARY
                                         for p in DTYPE_PAIRS if not (n in NO_BOOL and "bool" in p)])
def test_binary_with_promotion(name, dtypes):
    da, db = dtypes
    a = rand((3, 4), da, 0.5 if name == "pow" else -3, 3, seed=1)
    b = rand((4,), db, -2, 2, seed=2)
    if name in ("div", "floor_divide", "remainder"):
        b = np.where(b == 0, np.ones((), b.dtype), b).astype(b.dtype)
    if name == "pow" and "int" in da and "int" in db:
        b = np.abs(b)
    check(getattr(tf, name), getattr(torch, name), a, b)


def test_bool_arithmetic_is_rejected():
    b = tf.ones(3, dtype=tf.bool)
    with pytest.raises(tf.DTypeError):
        b - b
    with pytest.raises(tf.DTypeError):
        tf.maximum(b, b)


SCALARS = [2, 2.5, True, -3]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "int32", "int64", "bool"])
@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
def test_weak_python_scalars(dtype, scalar):
    """f16 * 2.0 stays f16; int32 + 2 stays int32; int + 2.5 -> float32; bool + 1 -> int64."""
    x = rand((5,), dtype, 1, 4, seed=3)
    ops = [operator.mul, operator.add]
    if dtype != "bool" and scalar is not True:  # torch refuses `-` with a bool operand
        ops += [operator.sub, operator.truediv]
    for op in ops:
        check(lambda t: op(t, scalar), lambda t: op(t, scalar), x)
        check(lambda t: op(scalar, t), lambda t: op(scalar, t), x)
    check(lambda t: t > scalar, lambda t: t > scalar, x)


OPERATORS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
             operator.pow, operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("op", OPERATORS, ids=lambda o: o.__name__)
def test_python_operators_and_reflected_forms(op):
    a = rand((2, 3), "float32", 0.5, 3, seed=4)
    b = rand((3,), "float32", 0.5, 3, seed=5)
    check(op, op, a, b)
    check(lambda t: op(1.5, t), lambda t: op(1.5, t), a)
    check(lambda t: op(t, 2), lambda t: op(t, 2), a)
    ai = rand((2, 3), "int64", 1, 5, seed=6)
    check(lambda t: op(7, t), lambda t: op(7, t), ai)


@pytest.mark.parametrize("op", ["iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow"])
def test_in_place_operators(op):
    fn = getattr(operator, op)
    a = rand((2, 3), "float32", 0.5, 3, seed=7)
    b = rand((3,), "float32", 0.5, 3, seed=8)

    def tf_fn(x, y):
        x = x.clone()
        before = x
        x = fn(x, y)
        assert x is before  # in place: the same tensor object, rebound
        return x
    check(tf_fn, lambda x, y: fn(x.clone(), y), a, b)
    check(lambda x: fn(x.clone(), 2), lambda x: fn(x.clone(), 2), a)


def test_in_place_rebinds_and_bumps_version():
    x = tf.ones(3)
    version = x._version
    x += 1
    x *= tf.tensor([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x.numpy(), [2.0, 4.0, 6.0])
    assert x._version == version + 2
    y = tf.ones(2, 2)
    y @= tf.eye(2) * 3
    np.testing.assert_array_equal(y.numpy(), np.full((2, 2), 3.0))


def test_bitwise_operators_on_bool():
    a, b = rand((4,), "bool", seed=9), rand((4,), "bool", seed=10)
    for op in (operator.and_, operator.or_, operator.xor):
        check(op, op, a, b)
    check(operator.invert, operator.invert, a)
    check(operator.neg, operator.neg, rand((4,), "float32"))
    check(abs, abs, rand((4,), "float32"))


def test_where_clamp_and_cast():
    c = rand((3, 4), "bool", seed=11)
    x = rand((3, 4), "float32", seed=12)
    y = rand((4,), "float16", seed=13)
    check(tf.where, torch.where, c, x, y)
    check(lambda c, x: tf.where(c, x, 0.0), lambda c, x: torch.where(c, x, 0.0), c, x)
    check(lambda x: tf.clamp(x, -1.0, 0.5), lambda x: torch.clamp(x, -1.0, 0.5), x)
    check(lambda x: x.clamp(min=0.0), lambda x: x.clamp(min=0.0), x)
    check(lambda x: tf.clamp(x, max=1), lambda x: torch.clamp(x, max=1), rand((5,), "int32", seed=14))
    lo, hi = rand((4,), "float32", -2, -1, seed=15), rand((4,), "float32", 1, 2, seed=16)
    check(lambda x, lo, hi: tf.clamp(x, lo, hi), lambda x, lo, hi: torch.clamp(x, lo, hi), x, lo, hi)
    check(lambda x: tf.masked_fill(x, x > 0, -1.0), lambda x: x.masked_fill(x > 0, -1.0), x)


CAST_DTYPES = ["float32", "float16", "bfloat16", "float64", "int8", "int32", "int64", "bool"]


@pytest.mark.parametrize("src", CAST_DTYPES)
def test_cast_every_pair(src):
    x = rand((7,), src, -100, 100, seed=17)
    for dst in CAST_DTYPES:
        tdst = getattr(torch, dst)

        def tf_fn(t, dst=dst):
            return t.to(getattr(tf, dst) if dst != "bool" else tf.bool)
        got = tf_fn(tf.from_numpy(x))
        want = to_torch(x).to(tdst)
        assert got.dtype.name == dst
        assert_close(got.numpy(), from_torch(want), dst, msg=f"cast {src} -> {dst}")
        jitted = tf.jit(tf_fn)(tf.from_numpy(x))
        assert_close(jitted.numpy(), from_torch(want), dst, msg=f"jit cast {src} -> {dst}")
    # the spellings
    t = tf.from_numpy(x)
    assert t.float().dtype is tf.float32 and t.half().dtype is tf.float16 and t.double().dtype is tf.float64
    assert t.long().dtype is tf.int64 and t.int().dtype is tf.int32 and t.bool().dtype is tf.bool
    assert tf.cast(t, "bfloat16").dtype is tf.bfloat16 and t.type(tf.float32).dtype is tf.float32


def test_float_to_int_cast_truncates_toward_zero():
    x = np.array([-2.7, -0.5, 0.5, 2.7, 3.0], np.float32)
    np.testing.assert_array_equal(tf.from_numpy(x).long().numpy(), [-2, 0, 0, 2, 3])
