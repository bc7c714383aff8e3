"""Gradient checks: every differentiable op in the op table, and the composites, against central
finite differences in float64; and compiled (jitted) gradients against eager ones per op.

The table drives the op tests: each OpDef with differentiable=True and samples contributes its
float64 samples. Finite differences evaluate the op's NumPy meaning directly, so the reference
never goes through the vjp rules under test.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow import nn
from tritonflow.dispatch import apply
from tritonflow.interpreter import run_numpy
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OPS

DIFFERENTIABLE = [op for op in OPS.values() if op.differentiable and op.vjp is not None and op.samples is not None]


def _float_positions(arrays):
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f" and a.size > 0]


def _op_loss_numpy(op, arrays, attrs, weight):
    out_type = op.infer([TensorType(a.shape, tf.dtypes.from_numpy_dtype(a.dtype)) for a in arrays], attrs)
    out = run_numpy(op, arrays, attrs, out_type).astype(np.float64)
    return float((out * weight).sum())


def finite_difference(f, arrays, positions, eps):
    grads = {}
    for i in positions:
        g = np.zeros(arrays[i].shape)
        flat = arrays[i].reshape(-1)
        for j in range(flat.size):
            keep = flat[j]
            flat[j] = keep + eps
            up = f(arrays)
            flat[j] = keep - eps
            down = f(arrays)
            flat[j] = keep
            g.reshape(-1)[j] = (up - down) / (2 * eps)
        grads[i] = g
    return grads


def op_cases():
    for op in DIFFERENTIABLE:
        for n, (args, attrs) in enumerate(op.samples(tf.float64)):
            arrays = [np.array(a, copy=True) for a in args]
            if _float_positions(arrays):
                yield pytest.param(op, arrays, attrs, id=f"{op.name}-{n}")


def eager_grads(op, arrays, attrs, weight, positions):
    tensors = [tf.from_numpy(a.copy()) for a in arrays]
    for i in positions:
        tensors[i].requires_grad_(True)
    out = apply(op, tensors, attrs)
    (out * tf.from_numpy(weight).to(out.dtype)).sum().backward()
    return {i: (tensors[i].grad.numpy() if tensors[i].grad is not None else np.zeros(arrays[i].shape))
            for i in positions}


@pytest.mark.parametrize("op, arrays, attrs", list(op_cases()))
def test_op_vjp_matches_finite_differences(op, arrays, attrs):
    positions = _float_positions(arrays)
    out_type = op.infer([TensorType(a.shape, tf.dtypes.from_numpy_dtype(a.dtype)) for a in arrays], attrs)
    weight = np.random.default_rng(0).standard_normal(tuple(out_type.shape))
    exact = out_type.dtype is tf.float64
    # A float32 output (cast) limits the finite difference: a larger step and a looser bound.
    eps, rtol, atol = (1e-6, 1e-6, 1e-7) if exact else (1e-2, 1e-3, 1e-4)
    want = finite_difference(lambda arrs: _op_loss_numpy(op, arrs, attrs, weight), arrays, positions, eps)
    got = eager_grads(op, arrays, attrs, weight, positions)
    for i in positions:
        np.testing.assert_allclose(got[i], want[i], rtol=rtol, atol=atol, err_msg=f"{op.name} input {i}")


@pytest.mark.parametrize("op, arrays, attrs", list(op_cases()))
def test_op_compiled_grad_equals_eager(op, arrays, attrs):
    positions = _float_positions(arrays)
    out_type = op.infer([TensorType(a.shape, tf.dtypes.from_numpy_dtype(a.dtype)) for a in arrays], attrs)
    weight = np.random.default_rng(1).standard_normal(tuple(out_type.shape))
    want = eager_grads(op, arrays, attrs, weight, positions)
    tensors = [tf.from_numpy(a.copy()) for a in arrays]
    for i in positions:
        tensors[i].requires_grad_(True)
    jitted = tf.jit(lambda *xs: apply(op, list(xs), attrs), backend="numpy")
    out = jitted(*tensors)
    (out * tf.from_numpy(weight).to(out.dtype)).sum().backward()
    for i in positions:
        got = tensors[i].grad.numpy() if tensors[i].grad is not None else np.zeros(arrays[i].shape)
        np.testing.assert_allclose(got, want[i], rtol=1e-12, atol=1e-13, err_msg=f"{op.name} input {i}")


# ---------------------------------------------------------------- composites

RNG = np.random.default_rng(5)


def _x(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, shape)


LABELS = tf.tensor([2, -100, 0, 3])
COMPOSITES = {
    "softmax": (lambda x: F.softmax(x, 1), [_x(3, 5)]),
    "log_softmax": (lambda x: F.log_softmax(x, 0), [_x(4, 3)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (5,), w, b), [_x(3, 5), _x(5), _x(5)]),
    "rms_norm": (lambda x, w: F.rms_norm(x, (2, 4), w), [_x(3, 2, 4), _x(2, 4)]),
    "gelu": (lambda x: F.gelu(x), [_x(7)]),
    "gelu_tanh": (lambda x: F.gelu(x, "tanh"), [_x(7)]),
    "silu": (lambda x: F.silu(x), [_x(7)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, LABELS, label_smoothing=0.2), [_x(4, 5)]),
    "cross_entropy_weighted": (lambda x, w: F.cross_entropy(x, LABELS, weight=w, reduction="sum"),
                               [_x(4, 5), _x(5, low=0.5, high=2.0)]),
    "sdpa_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                    [_x(2, 4, 3), _x(2, 4, 3), _x(2, 4, 3)]),
    "embedding": (lambda w: F.embedding(tf.tensor([[0, 2], [2, 3]]), w), [_x(4, 3)]),
    "conv2d": (lambda x, w, b: nn.conv.conv2d(x, w, b, stride=(2, 1), padding=1),
               [_x(1, 2, 5, 4), _x(3, 2, 3, 3), _x(3)]),
    "conv2d_groups": (lambda x, w: nn.conv.conv2d(x, w, groups=2, dilation=2), [_x(1, 4, 6, 6), _x(2, 2, 2, 2)]),
    "max_pool2d": (lambda x: nn.conv.max_pool2d(x, 3, 2, padding=1), [_x(1, 2, 5, 6)]),
    "avg_pool2d": (lambda x: nn.conv.avg_pool2d(x, 2, 1, padding=1, count_include_pad=False), [_x(1, 2, 4, 3)]),
    "mse_loss": (lambda a, b: F.mse_loss(a, b), [_x(3, 2), _x(3, 2)]),
}


@pytest.mark.parametrize("name", list(COMPOSITES))
def test_composite_gradients_match_finite_differences(name):
    fn, inputs = COMPOSITES[name]

    def loss(arrays, weight):
        with tf.no_grad():
            out = fn(*[tf.from_numpy(a) for a in arrays])
        return float((out.numpy().astype(np.float64) * weight).sum())

    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    leaves = [tf.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    out = fn(*leaves)
    weight = np.random.default_rng(2).standard_normal(out.shape)
    (out * tf.from_numpy(weight)).sum().backward()
    want = finite_difference(lambda arrs: loss(arrs, weight), arrays, range(len(arrays)), 1e-6)
    for i, t in enumerate(leaves):
        np.testing.assert_allclose(t.grad.numpy(), want[i], rtol=1e-6, atol=1e-7, err_msg=f"{name} input {i}")
