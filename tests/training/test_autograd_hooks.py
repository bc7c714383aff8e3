"""Autograd extension points: post-accumulate-grad hooks (against torch's), staged gradients, callbacks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow import AutogradError
from tritonflow.autograd import FunctionNode
from tritonflow.autograd_hooks import StagedGradients, queue_callback

RNG = np.random.default_rng(3)


def _model_loss(lib, w1, w2, b, x):
    h = lib.tanh(x @ w1 + b)
    return ((h @ w2) * (h @ w2)).sum() + (b * b).sum()  # b is used twice, w2 twice in one expression


def test_hooks_fire_once_per_leaf_with_the_full_gradient_like_torch():
    values = {"w1": RNG.standard_normal((4, 5)), "w2": RNG.standard_normal((5, 2)), "b": RNG.standard_normal(5)}
    x = RNG.standard_normal((3, 4))
    ours = {k: tf.tensor(v, requires_grad=True) for k, v in values.items()}
    theirs = {k: torch.tensor(v, requires_grad=True) for k, v in values.items()}
    seen = {"ours": [], "torch": []}
    for name in values:
        ours[name].register_post_accumulate_grad_hook(
            lambda t, name=name: seen["ours"].append((name, t.grad.numpy().copy())))
        theirs[name].register_post_accumulate_grad_hook(
            lambda t, name=name: seen["torch"].append((name, t.grad.detach().numpy().copy())))
    for _ in range(2):  # the second backward accumulates: the hook sees the sum
        _model_loss(tf, ours["w1"], ours["w2"], ours["b"], tf.tensor(x)).backward()
        _model_loss(torch, theirs["w1"], theirs["w2"], theirs["b"], torch.tensor(x)).backward()
    assert sorted(n for n, _ in seen["ours"]) == sorted(n for n, _ in seen["torch"]) == sorted(list(values) * 2)
    want = {}
    for name, grad in seen["torch"]:
        want.setdefault(name, []).append(grad)
    for name, grad in seen["ours"]:
        np.testing.assert_allclose(grad, want[name].pop(0), rtol=1e-12, err_msg=name)


def test_hook_removal_and_registration_errors():
    w = tf.tensor(RNG.standard_normal(3), requires_grad=True)
    calls = []
    handle = w.register_post_accumulate_grad_hook(lambda t: calls.append(1))
    (w * 2).sum().backward()
    handle.remove()
    (w * 2).sum().backward()
    assert calls == [1]
    with pytest.raises(AutogradError, match="only leaf tensors"):
        (w * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(AutogradError, match="does not require grad"):
        tf.ones(3).register_post_accumulate_grad_hook(lambda t: None)


def test_autograd_grad_runs_no_hooks_and_a_root_leaf_fires():
    w = tf.tensor(RNG.standard_normal(3), requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.numpy().copy()))
    tf.autograd.grad((w * w).sum(), w)
    assert calls == []  # nothing is accumulated, as in torch
    w.backward(tf.ones(3))
    assert len(calls) == 1 and np.array_equal(calls[0], np.ones(3))


def test_queue_callback_runs_after_every_hook_and_only_during_backward():
    a = tf.tensor(RNG.standard_normal(3), requires_grad=True)
    b = tf.tensor(RNG.standard_normal(3), requires_grad=True)
    events = []

    def hook(t):
        events.append("hook")
        if len(events) == 1:
            queue_callback(lambda: events.append(("done", a.grad is not None and b.grad is not None)))
    a.register_post_accumulate_grad_hook(hook)
    b.register_post_accumulate_grad_hook(hook)
    (a * b).sum().backward()
    assert events == ["hook", "hook", ("done", True)]
    with pytest.raises(AutogradError, match="while a backward pass runs"):
        queue_callback(lambda: None)


def test_staged_gradients_complete_leaves_stage_by_stage():
    """A node handing gradients over in stages: each stage's leaves are hooked before the next runs."""
    a = tf.tensor(RNG.standard_normal(2), requires_grad=True)
    b = tf.tensor(RNG.standard_normal(2), requires_grad=True)
    events = []
    for name, t in (("a", a), ("b", b)):
        t.register_post_accumulate_grad_hook(lambda t, name=name: events.append(f"hook {name}"))

    def backward(g):
        def stages():
            events.append("stage 1")
            yield [(1, g * 3.0)]
            events.append("stage 2")
            yield [(0, g * 2.0)]
        return StagedGradients(stages())

    out = tf.tensor(np.zeros(2))
    node = FunctionNode("staged", backward, [a, b], [out])
    node.attach([out])
    out.sum().backward()
    assert events == ["stage 1", "hook b", "stage 2", "hook a"]
    np.testing.assert_array_equal(a.grad.numpy(), np.full(2, 2.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(2, 3.0))
