"""tritonflow.amp.GradScaler against torch.amp.GradScaler (torch's own implementation, on CPU),
step by step: the scale, the growth tracker, which steps are skipped, the unscaled gradients and
the parameters after each step, state_dict round trips, and torch's errors for misuse.

The gradients are set directly (scaled losses of known size, some with inf/NaN entries) so both
scalers see the same values whatever the model; growth_interval is small so growth happens.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow.amp import GradScaler, GradScalerError

# per step: gradient of each of the two parameters, before scaling (None: no gradient)
_FINITE = [np.array([0.5, -1.0, 2.0], np.float32), np.array([[1e-3, -3.0]], np.float32)]


def _gradients(step: int):
    a, b = (g * (1 + 0.25 * step) for g in _FINITE)
    if step in (3, 4):
        a = a.copy()
        a[1] = np.inf if step == 3 else np.nan       # two bad steps in a row: backoff twice
    if step == 9:
        b = b.copy()
        b[0, 0] = -np.inf
    return a, b


def _pair(**kwargs):
    shapes = [(3,), (1, 2)]
    ours = [tf.tensor(np.ones(s, np.float32), requires_grad=True) for s in shapes]
    theirs = [torch.nn.Parameter(torch.ones(s)) for s in shapes]
    return (ours, tf.optim.SGD(ours, lr=0.1), GradScaler("cuda", **kwargs),
            theirs, torch.optim.SGD(theirs, lr=0.1), torch.amp.GradScaler("cpu", **kwargs))


def _assert_same_state(scaler, reference):
    assert scaler.get_scale() == reference.get_scale()
    assert scaler._get_growth_tracker() == reference._get_growth_tracker()
    assert scaler.state_dict() == reference.state_dict()


@pytest.mark.parametrize("unscale_first", [False, True], ids=["step-unscales", "unscale_-then-step"])
def test_step_by_step_as_torch(unscale_first):
    ours, opt, scaler, theirs, topt, tscaler = _pair(init_scale=2.0 ** 10, growth_interval=3)
    previous = [p.detach().numpy().copy() for p in ours]
    for step in range(14):
        loss = tf.tensor(np.float32(1.5))
        assert scaler.scale(loss).item() == tscaler.scale(torch.tensor(1.5)).item()
        for p, q, g in zip(ours, theirs, _gradients(step)):
            scaled = (g * np.float32(scaler.get_scale())).astype(np.float32)
            p.grad = tf.tensor(scaled)
            q.grad = torch.tensor(scaled)
        if unscale_first:
            scaler.unscale_(opt)
            tscaler.unscale_(topt)
            for p, q in zip(ours, theirs):   # what clip_grad_norm_ would see: bitwise torch's
                np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
        scaler.step(opt)
        tscaler.step(topt)
        scaler.update()
        tscaler.update()
        skipped = step in (3, 4, 9)
        for p, q, before in zip(ours, theirs, previous):
            # SGD's own rounding may differ from torch's by an ulp; a skipped step changes nothing
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-6)
            assert np.array_equal(p.detach().numpy(), before) == skipped
        previous = [p.detach().numpy().copy() for p in ours]
        _assert_same_state(scaler, tscaler)
    # the trace the rules imply: grow at 3 and 6 good steps, back off at steps 3, 4 and 9
    assert scaler.get_scale() == 2.0 ** 10 * 2 * 0.5 * 0.5 * 2 * 0.5 * 2


def test_half_losses_round_as_torch_and_nested_outputs():
    scaler, tscaler = GradScaler(), torch.amp.GradScaler("cpu")
    for value in (1.0, 1e-3, 0.3):   # (1,) float16: 1.0 * 2**16 overflows to inf, as in torch
        for shape in ((), (1,)):       # a 0-d half loss promotes to float32 in torch
            got = scaler.scale(tf.tensor(np.full(shape, value, np.float16)))
            want = tscaler.scale(torch.full(shape, value, dtype=torch.float16))
            assert got.dtype.name == str(want.dtype).split(".")[1]
            np.testing.assert_array_equal(got.numpy().astype(np.float64), want.double().numpy())
    a, (b, c) = scaler.scale([tf.tensor(1.0), (tf.tensor(2.0), tf.tensor(3.0))])
    assert (a.item(), b.item(), c.item()) == (65536.0, 131072.0, 196608.0)


def test_growth_stops_short_of_float32_overflow():
    ours, opt, scaler, theirs, topt, tscaler = _pair(init_scale=2.0 ** 127, growth_interval=1)
    for _ in range(2):
        for s, o, params in ((scaler, opt, ours), (tscaler, topt, theirs)):
            s.scale(tf.tensor(1.0) if s is scaler else torch.tensor(1.0))
            for p in params:
                p.grad = (tf.zeros if s is scaler else torch.zeros)(tuple(p.shape))
            s.step(o)
            s.update()
        _assert_same_state(scaler, tscaler)
    assert scaler.get_scale() == 2.0 ** 127


def test_update_with_a_new_scale_and_state_dict_round_trip():
    ours, opt, scaler, theirs, topt, tscaler = _pair(growth_interval=5)
    for s, o, params, make in ((scaler, opt, ours, tf.tensor), (tscaler, topt, theirs, torch.tensor)):
        s.scale(make(1.0))
        for p in params:
            p.grad = make(np.ones(tuple(p.shape), np.float32))
        s.step(o)
        s.update(new_scale=300.0)
    _assert_same_state(scaler, tscaler)
    restored = GradScaler()
    restored.load_state_dict(scaler.state_dict())
    assert restored.state_dict() == tscaler.state_dict()
    restored.scale(tf.tensor(1.0))
    assert restored.get_scale() == 300.0 and restored._get_growth_tracker() == tscaler._get_growth_tracker() == 0


def test_disabled_scaler_is_transparent():
    scaler = GradScaler(enabled=False)
    loss = tf.tensor(2.0)
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    p = tf.tensor(np.ones(2, np.float32), requires_grad=True)
    p.grad = tf.tensor(np.array([np.inf, 1.0], np.float32))
    opt = tf.optim.SGD([p], lr=1.0)
    scaler.step(opt)        # no inf check: the step runs, as torch's disabled scaler does
    scaler.update()
    assert np.isinf(p.detach().numpy()[0])


def test_misuse_raises_torchs_errors():
    p = tf.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = tf.optim.SGD([p], lr=1.0)
    scaler = GradScaler()
    with pytest.raises(GradScalerError, match="_scale is None"):
        scaler.unscale_(opt)
    scaler.scale(tf.tensor(1.0))
    p.grad = tf.tensor(np.ones(2, np.float32))
    scaler.unscale_(opt)
    with pytest.raises(GradScalerError, match="unscale_\\(\\) has already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(GradScalerError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(GradScalerError, match="unscale_\\(\\) is being called after step"):
        scaler.unscale_(opt)
    scaler.update()
    with pytest.raises(GradScalerError, match="No inf checks were recorded prior to update"):
        scaler.update()
    with pytest.raises(GradScalerError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: None)
    half = tf.tensor(np.ones(2, np.float16), requires_grad=True)
    half.grad = tf.tensor(np.ones(2, np.float16))
    with pytest.raises(tf.DTypeError, match="Attempting to unscale FP16 gradients"):
        scaler.unscale_(tf.optim.SGD([half], lr=1.0))
    with pytest.raises(tf.ShapeError, match="growth factor must be > 1.0"):
        GradScaler(growth_factor=1.0)
    with pytest.raises(GradScalerError, match="source state dict is empty"):
        GradScaler().load_state_dict({})


def test_a_jitted_function_reads_the_current_scale(backend):
    """The scale is a 0-d tensor updated in place: a jitted step that scales its loss sees each
    update without recompiling."""
    scaler = GradScaler(init_scale=8.0)
    w = tf.tensor(np.array([1.0, -2.0, 0.5], np.float32), requires_grad=True)
    opt = tf.optim.SGD([w], lr=0.0)

    @tf.jit(backend=backend)
    def scaled_loss(x):
        return scaler.scale((w * x).sum())

    x = tf.tensor(np.array([2.0, 1.0, 4.0], np.float32))
    scaler.scale(tf.tensor(1.0))   # makes the scale tensor before the first trace
    assert scaled_loss(x).item() == 8.0 * 2.0
    for step, want_scale in ((0, 4.0), (1, 2.0)):
        loss = scaled_loss(x)
        loss.backward()
        w.grad = tf.tensor(np.array([np.inf, 0.0, 0.0], np.float32))   # an overflow: back off
        scaler.step(opt)
        scaler.update()
        assert scaler.get_scale() == want_scale
        assert scaled_loss(x).item() == want_scale * 2.0
        w.grad = None
    assert scaled_loss.cache_info().misses == 1
