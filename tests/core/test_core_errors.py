"""Issue 2, item 9: each user mistake raises a TritonflowError subclass naming the op, the shapes or
dtypes, and the user's file:line — eagerly and while tracing, with no NumPy traceback attached.

(The large bad-input table for issue 6 lives in tests/test_errors.py; this file covers item 9's list.)
"""
from __future__ import annotations

import inspect
import math
import re
import sys

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F

FILE = "test_core_errors.py"


def _check(exc_type, pattern: str, fn, line: int) -> BaseException:
    with pytest.raises(exc_type) as info:
        fn()
    err = info.value
    text = str(err)
    assert isinstance(err, tf.TritonflowError), f"{type(err).__name__} is not a TritonflowError: {text}"
    # Match the message proper: the location line echoes the test's own source, pattern included.
    assert re.search(pattern, err.raw_message), f"message {err.raw_message!r} does not match {pattern!r}"
    assert f"{FILE}:{line}" in text, f"message does not point at {FILE}:{line}: {text!r}"
    # No NumPy (or other library) error travels with ours: the user sees one clean message.
    for chained in (err.__cause__, err.__context__):
        assert chained is None or isinstance(chained, tf.TritonflowError), \
            f"a {type(chained).__name__} is chained to the user's error: {chained}"
    assert "Traceback" not in text and "site-packages" not in text, text
    return err


def expect(exc_type, pattern: str, fn) -> BaseException:
    """`fn` (a one-line lambda written on the calling line) raises `exc_type` pointing at that line."""
    return _check(exc_type, pattern, fn, sys._getframe(1).f_lineno)


def line_of(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    for offset, text in enumerate(lines):
        if marker in text:
            return start + offset
    raise AssertionError(f"marker {marker!r} not in {fn.__name__}")


def expect_traced(exc_type, pattern: str, fn, marker: str, *args, **jit_kwargs) -> BaseException:
    """jit(fn)(*args) raises `exc_type` at trace time, pointing at the line of `fn` holding `marker`."""
    return _check(exc_type, pattern, lambda: tf.jit(fn, **jit_kwargs)(*args), line_of(fn, marker))


# ---------------------------------------------------------------- the base classes

def test_hierarchy():
    assert issubclass(tf.ShapeError, ValueError) and issubclass(tf.ShapeError, tf.TritonflowError)
    assert issubclass(tf.DTypeError, TypeError) and issubclass(tf.DTypeError, tf.TritonflowError)
    assert issubclass(tf.TritonflowIndexError, IndexError)
    for cls in (tf.TraceError, tf.UnsupportedError):
        assert issubclass(cls, tf.TritonflowError)


# ---------------------------------------------------------------- shapes

def test_broadcast_mismatch_eager():
    a, b = tf.ones(3, 4), tf.ones(5)
    expect(tf.ShapeError, r"add: shapes \(3, 4\) and \(5,\) cannot be broadcast", lambda: a + b)
    expect(ValueError, r"mul: shapes \(2, 3\) and \(3, 2\) cannot be broadcast", lambda: tf.ones(2, 3) * tf.ones(3, 2))
    expect(tf.ShapeError, r"where: shapes .* cannot be broadcast", lambda: tf.where(tf.ones(2) > 0, tf.ones(3), 0.0))


def test_broadcast_mismatch_traced():
    def f(x, y):
        h = x * 2.0
        return h - y  # the bad line
    expect_traced(tf.ShapeError, r"sub: shapes \(4, 3\) and \(4,\) cannot be broadcast", f, "the bad line",
                  tf.ones(4, 3), tf.ones(4))


def test_matmul_inner_dimension_mismatch():
    h, w = tf.ones(32, 64), tf.ones(128, 10)
    expect(tf.ShapeError, r"matmul: inner dimensions differ: \(32, 64\) @ \(128, 10\)", lambda: h @ w)
    expect(tf.ShapeError, r"matmul: inner dimensions differ: \(3,\) @ \(4,\)", lambda: tf.ones(3) @ tf.ones(4))
    expect(tf.ShapeError, r"matmul: .*at least 1 dim", lambda: tf.matmul(tf.ones(()), tf.ones(3)))

    def f(x, w):
        return F.linear(x, w)  # linear here
    expect_traced(tf.ShapeError, r"linear: input features 5 do not match weight \(2, 4\)", f, "linear here",
                  tf.ones(3, 5), tf.ones(2, 4))


def test_bad_reshape():
    x = tf.ones(3, 4)
    expect(tf.ShapeError, r"reshape: shape \(5, 5\) is invalid for input of shape \(3, 4\)", lambda: x.reshape(5, 5))
    expect(tf.ShapeError, r"reshape: only one dimension can be -1", lambda: x.reshape(-1, -1))
    expect(tf.ShapeError, r"reshape: shape \(5, -1\) is invalid for input of shape \(3, 4\)", lambda: x.view(5, -1))

    def f(x):
        return x.reshape(7, -1)  # reshape here
    expect_traced(tf.ShapeError, r"reshape: shape \(7, -1\) is invalid", f, "reshape here", tf.ones(3, 4))


def test_out_of_range_dim():
    x = tf.ones(2, 3)
    expect(tf.ShapeError, r"sum: dim 2 is out of range for a tensor of 2 dimension\(s\)", lambda: x.sum(2))
    expect(tf.ShapeError, r"mean: dim -3 is out of range", lambda: x.mean(dim=(0, -3)))
    expect(tf.ShapeError, r"softmax: dim 5 is out of range", lambda: F.softmax(x, dim=5))
    expect(tf.ShapeError, r"transpose: dim 2 is out of range", lambda: x.transpose(0, 2))
    expect(tf.ShapeError, r"cat: dim 2 is out of range", lambda: tf.cat([x, x], dim=2))
    expect(tf.ShapeError, r"unsqueeze: dim 4 is out of range", lambda: x.unsqueeze(4))
    expect(tf.ShapeError, r"argmax: dim -3 is out of range", lambda: x.argmax(-3))

    def f(x):
        return x.amax(axis=3)  # amax here
    expect_traced(tf.ShapeError, r"amax: dim 3 is out of range", f, "amax here", tf.ones(2, 3))


# ---------------------------------------------------------------- dtypes

def test_invalid_dtype_for_an_op():
    b = tf.ones(3, dtype=tf.bool)
    i = tf.ones(3, dtype=tf.int32)
    expect(tf.DTypeError, r"neg: bool tensors are not supported", lambda: -b)
    expect(TypeError, r"matmul: bool operands are not supported", lambda: tf.ones(2, 2, dtype=tf.bool) @ tf.ones(2, 2, dtype=tf.bool))
    expect(tf.DTypeError, r"mean: .*int32", lambda: i.mean())
    expect(tf.DTypeError, r"softmax: expected a floating point tensor, got int32", lambda: F.softmax(i))
    expect(tf.DTypeError, r"bitwise_and \(&\): only bool tensors are supported, got int32", lambda: i & i)
    expect(tf.DTypeError, r"unsupported dtype 'complex64'", lambda: tf.zeros(2, dtype="complex64"))
    expect(tf.DTypeError, r"add: expected a tensor or a number, got str", lambda: tf.ones(2) + "a")
    expect(tf.DTypeError, r"gather: index must be an integer tensor", lambda: tf.gather(tf.ones(2, 2), 0, tf.ones(2, 2)))

    def f(x, y):
        return x - y  # sub here
    expect_traced(tf.DTypeError, r"sub: bool operands are not supported", f, "sub here", b, b)


# ---------------------------------------------------------------- indexing

def test_wrong_index_type():
    x = tf.ones(3, 4)
    expect(IndexError, r"tensors can be indexed with ints, slices, None, \.\.\., bool masks and integer tensors; got str", lambda: x["a"])
    expect(tf.TritonflowIndexError, r"got float", lambda: x[1.5])
    expect(tf.TritonflowIndexError, r"slice indices must be integers or None, got float", lambda: x[0.5:2])
    expect(tf.TritonflowIndexError, r"only one ellipsis|single ellipsis", lambda: x[..., ...])

    def f(x):
        return x[:, "col"]  # index here
    expect_traced(tf.TritonflowIndexError, r"got str", f, "index here", x)


def test_index_out_of_range():
    x = tf.ones(3, 4)
    err = expect(tf.TritonflowIndexError, r"index 3 is out of bounds for dimension 0 with size 3", lambda: x[3])
    assert isinstance(err, IndexError)
    expect(IndexError, r"index -5 is out of bounds for dimension 1 with size 4", lambda: x[0, -5])
    expect(IndexError, r"too many indices for tensor of dimension 2", lambda: x[0, 0, 0])
    index = tf.tensor([[0, 1, 2, 5]])
    expect(IndexError, r"gather: index out of range for dim 0 of size 3", lambda: tf.gather(x, 0, index))
    expect(IndexError, r"index_select: index 4 is out of range for dim 1 of size 4", lambda: x.index_select(1, tf.tensor([4])))

    def f(x):
        return x[1, 7]  # index here
    expect_traced(tf.TritonflowIndexError, r"index 7 is out of bounds for dimension 1 with size 4", f,
                  "index here", x)


# ---------------------------------------------------------------- tracing

def test_data_dependent_branch():
    def f(x):
        if x.sum() > 0:  # the branch
            return x
        return -x
    err = expect_traced(tf.TraceError, r"bool\(\) of a tensor .* tritonflow\.where", f, "the branch", tf.ones(3))
    assert "static" in str(err)

    def g(x):
        while x.max() > 1:  # loop here
            x = x / 2
        return x
    expect_traced(tf.TraceError, r"tritonflow\.where", g, "loop here", tf.ones(3))


def test_concrete_value_of_a_traced_tensor():
    def item(x):
        return x * x.sum().item()  # item here
    expect_traced(tf.TraceError, r"\.item\(\) needs a concrete value.*tritonflow\.where.*static", item,
                  "item here", tf.ones(3))

    def to_numpy(x):
        return tf.tensor(x.numpy() * 2)  # numpy here
    expect_traced(tf.TraceError, r"\.numpy\(\) needs a concrete value", to_numpy, "numpy here", tf.ones(3))

    def to_int(x):
        return x[: int(x[0])]  # int here
    expect_traced(tf.TraceError, r"int\(\) of a tensor needs a concrete value.*static", to_int, "int here",
                  tf.ones(3))

    def to_float(x):
        return x * float(x.mean())  # float here
    expect_traced(tf.TraceError, r"float\(\) of a tensor", to_float, "float here", tf.ones(3))


def test_unsupported_python_operation_on_a_traced_tensor():
    def numpy_ufunc(x):
        return tf.tensor(np.sin(x))  # ufunc here
    expect_traced(tf.TraceError, r"converting a tensor to a NumPy array .* needs a concrete value", numpy_ufunc, "ufunc here", tf.ones(3))

    def python_math(x):
        return x * math.sqrt(x.sum())  # math here
    expect_traced(tf.TraceError, r"float\(\) of a tensor", python_math, "math here", tf.ones(3))

    def to_list(x):
        return tf.tensor(x.tolist())  # tolist here
    expect_traced(tf.TraceError, r"needs a concrete value", to_list, "tolist here", tf.ones(3))

    def mask_read(x):
        return x[x > 0]  # mask here
    expect_traced(tf.TraceError, r"boolean-mask indexing .* tritonflow\.where", mask_read, "mask here", tf.ones(3))

    def as_python_int(x, y):
        return [y * i for i in range(x.sum())]  # range here
    expect_traced(tf.TraceError, r"using a tensor as a Python index needs a concrete value", as_python_int,
                  "range here", tf.ones(3, dtype=tf.int64), tf.ones(5))

    def truth_of_compare(x):
        return x if x.shape[0] > 1 and x.min() else -x  # and here
    expect_traced(tf.TraceError, r"bool\(\) of a tensor", truth_of_compare, "and here", tf.ones(3))


def test_errors_from_nested_helpers_point_at_the_model_line():
    def helper(a, b):
        return a @ b  # the matmul

    def model(x, w):
        return helper(x, w) + 1
    _check(tf.ShapeError, r"matmul: inner dimensions differ: \(2, 3\) @ \(4, 5\)",
           lambda: tf.jit(model)(tf.ones(2, 3), tf.ones(4, 5)), line_of(helper, "the matmul"))
