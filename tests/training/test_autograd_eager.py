"""Eager reverse mode: gradients against torch (float64), accumulation, no_grad, detach, in-place, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow import AutogradError, TritonflowError
from tests.helpers import assert_close

RNG = np.random.default_rng(0)


def pair(shape):
    """The same float64 values as a tritonflow leaf and a torch leaf."""
    a = RNG.standard_normal(shape)
    return tf.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def test_broadcast_gradients_sum_back_to_input_shapes():
    x, tx = pair((3, 4))
    b, tb = pair((4,))
    c, tc = pair((3, 1))
    y = ((x * b + c).exp() * x).sum()
    ty = ((tx * tb + tc).exp() * tx).sum()
    y.backward()
    ty.backward()
    for got, want in ((x, tx), (b, tb), (c, tc)):
        assert got.grad.shape == tuple(want.shape)
        assert_close(got.grad, want.grad, "float64")


def test_gradient_accumulates_across_backward_calls_and_uses():
    x, tx = pair((5,))
    for _ in range(2):
        (x * x + x.sin()).sum().backward()
        (tx * tx + tx.sin()).sum().backward()
    assert_close(x.grad, tx.grad, "float64")


def test_backward_with_gradient_argument():
    x, tx = pair((2, 3))
    g = RNG.standard_normal((2, 3))
    (x.tanh() * 2).backward(tf.tensor(g))
    (tx.tanh() * 2).backward(torch.tensor(g))
    assert_close(x.grad, tx.grad, "float64")


def test_no_grad_and_detach_stop_gradients():
    x, _ = pair((3,))
    with tf.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = (x.detach() * x).sum()
    z.backward()
    assert_close(x.grad, x.detach().numpy(), "float64")  # d/dx (c * x) with c = x's value

    @tf.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad


def test_inplace_on_nonleaf_keeps_saved_values_correct():
    # torch refuses this (a saved value was modified); tritonflow rebinds instead of writing, so the
    # value saved for z's backward is the old y and the result is exact.
    x, _ = pair((4,))
    y = x * 1.0
    z = y * y          # saves y
    y += 5.0           # rebinds y
    (z.sum() + y.sum()).backward()
    assert_close(x.grad, 2 * x.detach().numpy() + 1.0, "float64")


def test_inplace_on_leaf_requiring_grad_raises():
    x, _ = pair((3,))
    with pytest.raises(AutogradError, match="in-place"):
        x.add_(1.0)
    with tf.no_grad():
        x.add_(1.0)  # what optimizers do


def test_views_and_indexing_gradients():
    x, tx = pair((4, 6))
    y = x[1:3, ::2].T.reshape(-1) * tf.arange(6, dtype="float64")
    ty = tx[1:3, ::2].T.reshape(-1) * torch.arange(6, dtype=torch.float64)
    y.sum().backward()
    ty.sum().backward()
    assert_close(x.grad, tx.grad, "float64")


def test_matmul_softmax_chain_matches_torch():
    a, ta = pair((2, 3, 4))
    w, tw = pair((4, 5))
    y = tf.nn.functional.log_softmax(a @ w, -1)[..., 0].sum()
    ty = torch.log_softmax(ta @ tw, -1)[..., 0].sum()
    y.backward()
    ty.backward()
    assert_close(a.grad, ta.grad, "float64")
    assert_close(w.grad, tw.grad, "float64")


def test_retain_graph_and_second_backward_error():
    x, _ = pair((3,))
    y = (x.exp()).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, 2 * np.exp(x.detach().numpy()), "float64")
    with pytest.raises(AutogradError, match="second time"):
        y.backward()


def test_retain_grad_on_intermediate():
    x, tx = pair((3,))
    h = x * 3.0
    h.retain_grad()
    (h * h).sum().backward()
    th = tx * 3.0
    th.retain_grad()
    (th * th).sum().backward()
    assert_close(h.grad, th.grad, "float64")


def test_functional_grad_does_not_touch_dot_grad():
    x, tx = pair((3,))
    (gx,) = tf.autograd.grad((x ** 3).sum(), [x])
    assert x.grad is None
    assert_close(gx, 3 * x.detach().numpy() ** 2, "float64")


def test_non_differentiable_ops_give_no_gradient():
    x, _ = pair((4,))
    y = (x > 0)
    assert not y.requires_grad
    assert not tf.argmax(x).requires_grad


def test_backward_errors_name_the_problem():
    x, _ = pair((2, 2))
    with pytest.raises(AutogradError, match="scalar outputs.*shape \\(2, 2\\)"):
        (x * 2).backward()
    plain = tf.ones(3)
    with pytest.raises(AutogradError, match="does not require grad"):
        plain.sum().backward()
    with pytest.raises(AutogradError, match="gradient shape"):
        (x * 2).backward(tf.ones(3, dtype="float64"))
    assert issubclass(AutogradError, TritonflowError)


def test_half_precision_leaf_gets_gradient_in_its_dtype():
    x = tf.tensor(RNG.standard_normal(4), dtype="float16", requires_grad=True)
    (x.float() * 2.0).sum().backward()
    assert x.grad.dtype is tf.float16
    assert_close(x.grad, np.full(4, 2.0), "float16")
