"""The compiled backward's kernels fuse like the forward's (triton backend; DESIGN.md fusion rules).

softmax backward: 1 kernel; layer_norm and rms_norm backward: at most 2 (the row reduction for
dx, and the column reduction for the weight and bias gradients). Gradients are checked too.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tests.helpers import assert_close

RNG = np.random.default_rng(0)


def leaf(*shape):
    return tf.tensor(RNG.standard_normal(shape), dtype="float32", requires_grad=True)


CASES = [
    ("softmax", lambda x: F.softmax(x, -1), lambda: [leaf(6, 33)], 1),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (33,), w, b), lambda: [leaf(6, 33), leaf(33), leaf(33)], 2),
    ("rms_norm", lambda x, w: F.rms_norm(x, (33,), w), lambda: [leaf(5, 33), leaf(33)], 2),
]


@pytest.mark.parametrize("name, fn, make, most", CASES, ids=[c[0] for c in CASES])
def test_backward_kernel_count_and_values(name, fn, make, most):
    args = make()
    g = tf.tensor(RNG.standard_normal(tuple(args[0].shape)), dtype="float32")
    jitted = tf.jit(fn, backend="triton")
    jitted(*args).backward(g)
    got = [a.grad.numpy().copy() for a in args]
    (entry,) = jitted.entries.values()
    assert len(entry.runner.kernels) == 1, f"{name} forward: {len(entry.runner.kernels)} kernels"
    assert len(entry.backward_runner.kernels) <= most, f"{name} backward: {len(entry.backward_runner.kernels)} kernels"
    for a in args:
        a.grad = None
    fn(*args).backward(g)
    for value, a in zip(got, args):
        assert_close(value, a.grad, "float32", rtol_scale=10)
