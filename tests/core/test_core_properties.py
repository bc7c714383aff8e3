"""Hypothesis properties: broadcasting and dtype promotion.

The promotion oracle is written here, independently of tritonflow/dtypes.py, from the Python array
API standard (within a category: bool; signed ints by width; floats by width) plus PyTorch's rules
where the standard is silent: across categories the higher category's dtype wins (int + float ->
the float), float16 with bfloat16 gives float32, and Python scalars are weak (they adopt the tensor's
dtype when their category is not higher; otherwise int -> int64, float -> float32).
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import tritonflow as tf

CATEGORY = {"bool": 0, "int8": 1, "int32": 1, "int64": 1, "float16": 2, "bfloat16": 2, "float32": 2, "float64": 2}
WIDTH = {"bool": 1, "int8": 8, "int32": 32, "int64": 64, "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
NAMES = list(CATEGORY)


def expected_promotion(a: str, b: str) -> str:
    if a == b:
        return a
    if CATEGORY[a] != CATEGORY[b]:
        return a if CATEGORY[a] > CATEGORY[b] else b
    if {a, b} == {"float16", "bfloat16"}:
        return "float32"  # neither 16-bit float holds the other
    return a if WIDTH[a] > WIDTH[b] else b


def expected_with_scalar(tensor: str, scalar) -> str:
    category = 0 if isinstance(scalar, bool) else 1 if isinstance(scalar, int) else 2
    if category <= CATEGORY[tensor]:
        return tensor
    return "int64" if category == 1 else "float32"


def test_oracle_agrees_with_torch():
    """The written-down table is PyTorch's too (torch.promote_types) for every pair."""
    for a in NAMES:
        for b in NAMES:
            want = str(torch.promote_types(getattr(torch, a), getattr(torch, b))).replace("torch.", "")
            assert expected_promotion(a, b) == want, (a, b)


def test_full_table():
    for a in NAMES:
        for b in NAMES:
            got = tf.promote_types(getattr(tf, a if a != "bool" else "bool_"), getattr(tf, b if b != "bool" else "bool_"))
            assert got.name == expected_promotion(a, b), (a, b)


def _tensor(name: str, shape=(2,)):
    dtype = tf.bool if name == "bool" else getattr(tf, name)
    return tf.ones(shape, dtype=dtype)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(NAMES), st.sampled_from(NAMES), st.sampled_from(["add", "mul", "maximum", "eq", "where"]))
def test_binary_ops_promote_by_the_table(a, b, op):
    if op == "maximum" and "bool" in (a, b):
        return  # maximum rejects bool operands (tested in test_core_api_elementwise)
    x, y = _tensor(a), _tensor(b)
    if op == "where":
        out = tf.where(x != x, x, y)
    else:
        out = getattr(tf, op)(x, y)
    want = "bool" if op == "eq" else expected_promotion(a, b)
    assert out.dtype.name == want
    # Promotion is the same under jit.
    fn = (lambda p, q: tf.where(p != p, p, q)) if op == "where" else getattr(tf, op)
    assert tf.jit(fn)(x, y).dtype.name == want


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(NAMES), st.one_of(st.booleans(), st.integers(-5, 5), st.floats(-4, 4, allow_nan=False)),
       st.booleans())
def test_python_scalars_are_weak(name, scalar, reflected):
    x = _tensor(name)
    out = (scalar * x) if reflected else (x * scalar)
    assert out.dtype.name == expected_with_scalar(name, scalar)
    want = x.numpy().astype(np.float64) * float(scalar)
    np.testing.assert_allclose(out.numpy().astype(np.float64), want.astype(out.numpy().dtype).astype(np.float64))


@settings(max_examples=120, deadline=None)
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4))
def test_broadcasting_matches_numpy(shapes):
    sa, sb = shapes.input_shapes
    rng = np.random.default_rng(0)
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    got = tf.from_numpy(np.asarray(a)) + tf.from_numpy(np.asarray(b))
    assert got.shape == shapes.result_shape
    np.testing.assert_array_equal(got.numpy(), a + b)
    expanded = tf.broadcast_tensors(tf.from_numpy(np.asarray(a)), tf.from_numpy(np.asarray(b)))
    assert [t.shape for t in expanded] == [shapes.result_shape] * 2


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=0, max_size=4), st.lists(st.integers(1, 4), min_size=0, max_size=4))
def test_broadcast_errors_exactly_when_numpy_refuses(sa, sb):
    a, b = tf.zeros(tuple(sa)), tf.zeros(tuple(sb))
    try:
        want = np.broadcast_shapes(tuple(sa), tuple(sb))
    except ValueError:
        try:
            a * b
        except tf.ShapeError as err:
            assert "mul: shapes" in str(err) and "cannot be broadcast" in str(err)
        else:
            raise AssertionError(f"{sa} * {sb} should not broadcast")
        return
    assert (a * b).shape == want
