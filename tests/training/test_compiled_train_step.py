"""A whole training step (forward, loss.backward(), clipping, optimizer update) jitted equals eager."""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import nn
import tritonflow.nn.functional as F


def make(opt_name, schedule=None):
    """(model, optimizer, scheduler); `schedule(opt)` makes the scheduler (default: cosine with warm-up)."""
    tf.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.GELU(), nn.LayerNorm(12), nn.Linear(12, 3))
    if opt_name == "sgd":
        opt = tf.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    else:
        opt = tf.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.05)
    if schedule is not None:
        return model, opt, schedule(opt)
    sched = tf.optim.lr_scheduler.CosineWarmupLR(opt, warmup_steps=2, total_steps=8)
    return model, opt, sched


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    tf.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_jitted_training_step_equals_eager(opt_name):
    eager = make(opt_name)
    compiled = make(opt_name)
    step = tf.jit(train_step)
    rng = np.random.default_rng(0)
    for _ in range(6):
        x = tf.tensor(rng.standard_normal((10, 6)), dtype="float32")
        y = tf.tensor(rng.integers(0, 3, 10))
        losses = []
        for (model, opt, sched), run in ((eager, train_step), (compiled, step)):
            losses.append(float(run(model, opt, x, y)))
            sched.step()
        assert losses[1] == pytest.approx(losses[0], rel=1e-5, abs=1e-6)
    for (name, a), b in zip(eager[0].named_parameters(), compiled[0].parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(eager[1].state.values(), compiled[1].state.values()):
        for k in a:
            np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    # One compile for all six steps: the schedule's lr changes are read from tensor arguments.
    assert step.cache_info().misses == 1


def test_step_with_explicit_parameter_lists():
    rng = np.random.default_rng(1)
    w = tf.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    w_ref = tf.tensor(w.detach().numpy(), requires_grad=True)
    x = tf.tensor(rng.standard_normal((8, 4)))

    def step(params, x):
        loss = ((x @ params[0]).tanh() ** 2).mean()
        loss.backward()
        with tf.no_grad():
            for p in params:
                p -= p.grad * 0.5
        return loss

    js = tf.jit(step)
    for _ in range(3):
        w_ref.grad = None
        w.grad = None
        step([w_ref], x)
        js([w], x)
    np.testing.assert_allclose(w.detach().numpy(), w_ref.detach().numpy(), rtol=1e-12)
