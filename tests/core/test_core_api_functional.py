"""tritonflow.nn.functional composites against torch.nn.functional on CPU, eager and jitted
(on every backend), plus creation functions and Tensor attributes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import tritonflow as tf
import tritonflow.nn.functional as F

from core_torch import check, rand
from helpers import assert_close


def _check(backend, tf_fn, torch_fn, *args, **kwargs):
    check(tf_fn, torch_fn, *args, backend=backend, **kwargs)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_activations(backend, dtype):
    x = rand((3, 7), dtype, seed=60)
    _check(backend, F.relu, TF.relu, x)
    _check(backend, F.silu, TF.silu, x)
    _check(backend, F.gelu, TF.gelu, x)
    _check(backend, lambda t: F.gelu(t, approximate="tanh"), lambda t: TF.gelu(t, approximate="tanh"), x)
    _check(backend, lambda t: F.leaky_relu(t, 0.2), lambda t: TF.leaky_relu(t, 0.2), x)
    _check(backend, F.sigmoid, torch.sigmoid, x)
    _check(backend, F.tanh, torch.tanh, x)


@pytest.mark.parametrize("dim", [-1, 0])
def test_softmax_log_softmax(backend, dim):
    x = rand((4, 9), "float32", seed=61)
    x[1, :] = -np.inf  # a fully masked row: softmax gives 0 (tritonflow) where torch gives NaN
    finite = rand((4, 9), "float32", seed=62)
    _check(backend, lambda t: F.softmax(t, dim), lambda t: TF.softmax(t, dim), finite, rtol_scale=9)
    _check(backend, lambda t: F.log_softmax(t, dim), lambda t: TF.log_softmax(t, dim), finite, rtol_scale=9)
    _check(backend, lambda t: tf.softmax(t, dim, dtype=tf.float64), lambda t: torch.softmax(t, dim, dtype=torch.float64),
           finite.astype(np.float16), rtol_scale=9)
    got = F.softmax(tf.from_numpy(x), -1).numpy()
    assert np.all(got[1] == 0) and np.allclose(got[[0, 2, 3]].sum(-1), 1, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_norms(backend, dtype):
    x = rand((3, 4, 8), dtype, seed=63)
    w, b = rand((8,), dtype, seed=64), rand((8,), dtype, seed=65)
    _check(backend, lambda t: F.layer_norm(t, (8,)), lambda t: TF.layer_norm(t, (8,)), x, rtol_scale=8)
    _check(backend, lambda t, w, b: F.layer_norm(t, (8,), w, b, eps=1e-3),
           lambda t, w, b: TF.layer_norm(t, (8,), w, b, eps=1e-3), x, w, b, rtol_scale=8)
    _check(backend, lambda t: F.layer_norm(t, (4, 8)), lambda t: TF.layer_norm(t, (4, 8)), x, rtol_scale=32)
    _check(backend, lambda t, w: F.rms_norm(t, (8,), w, eps=1e-6), lambda t, w: TF.rms_norm(t, (8,), w, eps=1e-6),
           x, w, rtol_scale=8)
    _check(backend, lambda t: F.rms_norm(t, (8,)), lambda t: TF.rms_norm(t, (8,)), x, rtol_scale=8)


def test_linear_embedding_one_hot(backend):
    x, w, b = rand((2, 3, 5), "float32", seed=66), rand((4, 5), "float32", seed=67), rand((4,), "float32", seed=68)
    _check(backend, F.linear, TF.linear, x, w, b, rtol_scale=5)
    _check(backend, F.linear, TF.linear, x, w, rtol_scale=5)
    idx = np.array([[0, 3, 1], [2, 2, 0]])
    table = rand((4, 6), "float32", seed=69)
    _check(backend, lambda t: F.embedding(tf.tensor(idx), t), lambda t: TF.embedding(torch.tensor(idx), t), table)
    labels = np.array([0, 3, 1, 1])
    got = F.one_hot(tf.tensor(labels), 5)
    np.testing.assert_array_equal(got.numpy(), TF.one_hot(torch.tensor(labels), 5).numpy())
    assert got.dtype is tf.int64
    np.testing.assert_array_equal(F.one_hot(tf.tensor(labels)).numpy(), TF.one_hot(torch.tensor(labels)).numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses(backend, reduction):
    logits = rand((5, 7), "float32", seed=70)
    target = np.array([0, 6, 3, -100, 2])
    t_target = torch.tensor(target)

    def both(target=target, **kw):
        _check(backend, lambda z: F.cross_entropy(z, tf.tensor(target), reduction=reduction, **kw),
               lambda z: TF.cross_entropy(z, torch.tensor(target), reduction=reduction, **kw), logits, rtol_scale=35)
    both()
    both(label_smoothing=0.1)
    both(target=np.array([0, 6, 3, 6, 2]), ignore_index=6)
    weight = rand((7,), "float32", 0.5, 2, seed=71)
    _check(backend, lambda z, w: F.cross_entropy(z, tf.tensor(target), weight=w, reduction=reduction),
           lambda z, w: TF.cross_entropy(z, t_target, weight=w, reduction=reduction), logits, weight, rtol_scale=35)
    probs = rand((5, 7), "float32", 0, 1, seed=72)
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    _check(backend, lambda z, p: F.cross_entropy(z, p, reduction=reduction, label_smoothing=0.2),
           lambda z, p: TF.cross_entropy(z, p, reduction=reduction, label_smoothing=0.2), logits, probs, rtol_scale=35)
    logp = np.log(probs)
    _check(backend, lambda z: F.nll_loss(z, tf.tensor(target), reduction=reduction),
           lambda z: TF.nll_loss(z, t_target, reduction=reduction), logp, rtol_scale=5)
    a, b = rand((3, 4), "float32", seed=73), rand((3, 4), "float32", seed=74)
    _check(backend, lambda a, b: F.mse_loss(a, b, reduction=reduction),
           lambda a, b: TF.mse_loss(a, b, reduction=reduction), a, b, rtol_scale=12)


def test_cross_entropy_spatial_target():
    logits = rand((2, 3, 4), "float32", seed=75)
    target = np.array([[0, 2, 1, 1], [2, 2, 0, 1]])
    check(lambda z: F.cross_entropy(z, tf.tensor(target)), lambda z: TF.cross_entropy(z, torch.tensor(target)),
          logits, rtol_scale=8)


def test_scaled_dot_product_attention(backend):
    q, k, v = (rand((2, 3, 5, 4), "float32", seed=s) for s in (76, 77, 78))
    sdpa, tsdpa = F.scaled_dot_product_attention, TF.scaled_dot_product_attention
    _check(backend, sdpa, tsdpa, q, k, v, rtol_scale=20)
    _check(backend, lambda q, k, v: sdpa(q, k, v, is_causal=True), lambda q, k, v: tsdpa(q, k, v, is_causal=True),
           q, k, v, rtol_scale=20)
    mask = rand((5, 5), "bool", seed=79)
    mask[:, 0] = True  # no fully masked row (torch gives NaN there)
    _check(backend, lambda q, k, v, m: sdpa(q, k, v, attn_mask=m), lambda q, k, v, m: tsdpa(q, k, v, attn_mask=m),
           q, k, v, mask, rtol_scale=20)
    bias = rand((3, 5, 5), "float32", seed=80)
    _check(backend, lambda q, k, v, m: sdpa(q, k, v, attn_mask=m, scale=0.3),
           lambda q, k, v, m: tsdpa(q, k, v, attn_mask=m, scale=0.3), q, k, v, bias, rtol_scale=20)


def test_dropout_statistics_and_reproducibility():
    x = tf.ones(200, 50)
    tf.manual_seed(3)
    a = F.dropout(x, 0.3)
    kept = a.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(a.numpy()[kept], 1 / 0.7, rtol=1e-6)
    tf.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.3).numpy(), a.numpy())
    assert F.dropout(x, 0.3, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)
    tf.manual_seed(3)
    jitted = tf.jit(lambda t: F.dropout(t, 0.3))(x)
    np.testing.assert_array_equal(jitted.numpy(), a.numpy())  # the same Philox stream under jit


# ---------------------------------------------------------------- creation and attributes

def test_creation_functions():
    np.testing.assert_array_equal(tf.zeros(2, 3).numpy(), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(tf.ones((2,), dtype=tf.int32).numpy(), np.ones(2, np.int32))
    assert tf.full((2, 2), 7).dtype is tf.int64 and tf.full((2,), 1.5).dtype is tf.float32
    assert tf.full((2,), True).dtype is tf.bool
    assert tf.empty(3, 4).shape == (3, 4)
    for args, kw in [((5,), {}), ((2, 9, 3), {}), ((0.0, 1.0, 0.25), {}), ((5,), {"dtype": tf.float64}),
                     ((-3, 4), {}), ((10, 0, -3), {})]:
        got, want = tf.arange(*args, **kw), torch.arange(*args, **{k: torch.float64 for k in kw})
        assert got.dtype.name == str(want.dtype).replace("torch.", ""), args
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    for args in [(0.0, 1.0, 5), (-2, 2, 7), (3.0, 3.0, 1), (1.0, 0.0, 4)]:
        np.testing.assert_allclose(tf.linspace(*args).numpy(), torch.linspace(*args).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(tf.eye(3).numpy(), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(tf.eye(2, 4, dtype=tf.int64).numpy(), np.eye(2, 4, dtype=np.int64))
    x = tf.tensor([[1.0, 2.0]], dtype=tf.float16)
    for fn, value in [(tf.zeros_like, 0), (tf.ones_like, 1), (lambda t: tf.full_like(t, 4), 4)]:
        y = fn(x)
        assert y.dtype is tf.float16 and y.shape == (1, 2)
        np.testing.assert_array_equal(y.numpy(), value)
    assert tf.empty_like(x).shape == (1, 2)
    assert tf.rand_like(x).dtype is tf.float16 and tf.randn_like(x).shape == (1, 2)
    r = tf.randint_like(tf.zeros(100, dtype=tf.int32), 3, 6)
    assert r.dtype is tf.int32 and r.numpy().min() >= 3 and r.numpy().max() <= 5


def test_tensor_and_from_numpy():
    assert tf.tensor(3).dtype is tf.int64 and tf.tensor(3.0).dtype is tf.float32
    # A NumPy scalar keeps its dtype, as torch.tensor(np.float64(1.5)) does.
    assert tf.tensor(np.float64(1.5)).dtype is tf.float64 and tf.tensor(np.float32(1.5)).dtype is tf.float32
    assert tf.tensor([True]).dtype is tf.bool and tf.tensor([1, 2], dtype=tf.float16).dtype is tf.float16
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = tf.from_numpy(a)
    assert t.dtype is tf.float64 and t.shape == (2, 3)
    np.testing.assert_array_equal(tf.tensor(a).numpy(), a)
    np.testing.assert_array_equal(tf.tensor(torch.arange(4)).numpy(), np.arange(4))


def test_random_functions():
    tf.manual_seed(0)
    u = tf.rand(4000)
    assert u.dtype is tf.float32 and 0 <= u.numpy().min() and u.numpy().max() < 1
    assert abs(u.numpy().mean() - 0.5) < 0.02
    n = tf.randn(4000, dtype=tf.float64)
    assert n.dtype is tf.float64 and abs(n.numpy().mean()) < 0.06 and abs(n.numpy().std() - 1) < 0.05
    ints = tf.randint(2, 7, (3000,))
    assert ints.dtype is tf.int64 and set(np.unique(ints.numpy())) == {2, 3, 4, 5, 6}
    tf.manual_seed(5)
    first = tf.rand(3, 3).numpy()
    second = tf.rand(3, 3).numpy()
    tf.manual_seed(5)
    np.testing.assert_array_equal(tf.rand(3, 3).numpy(), first)
    assert not np.array_equal(first, second)


def test_tensor_attributes_and_methods():
    x = tf.from_numpy(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert x.shape == (3, 4) and isinstance(x.shape, tuple) and x.ndim == 2 and x.numel() == 12
    assert x.dtype is tf.float32 and x.device == "cpu" and x.size(1) == 4 and x.dim() == 2
    np.testing.assert_array_equal(x.T.numpy(), np.arange(12).reshape(3, 4).T)
    assert x[1, 2].item() == 6.0 and isinstance(x[1, 2].item(), float)
    assert tf.tensor(5).item() == 5 and isinstance(tf.tensor(5).item(), int)
    assert x.to(tf.float16).dtype is tf.float16 and x.to("cpu") is x
    assert x.to("cpu", tf.int32).dtype is tf.int32
    np.testing.assert_array_equal(x.contiguous().numpy(), x.numpy())
    c = x.clone()
    c += 1
    np.testing.assert_array_equal(x.numpy(), np.arange(12).reshape(3, 4))  # the clone is independent
    assert x.tolist() == np.arange(12, dtype=np.float32).reshape(3, 4).tolist()
    assert float(x[0, 1]) == 1.0 and int(x[2, 0]) == 8 and bool(x[0, 1])
    assert len(x) == 3 and [r.shape for r in x] == [(4,)] * 3


def test_format_spec_on_a_0d_tensor_formats_its_value():
    # f"{loss:.4f}" in a training loop, as PyTorch allows it for 0-d tensors.
    assert f"{tf.tensor(1.23456):.2f}" == "1.23"
    assert format(tf.tensor(7), ">4d") == "   7"
    assert f"{tf.tensor([1.0, 2.0])}" == str(tf.tensor([1.0, 2.0]))
    with pytest.raises(tf.TraceError, match=r"\.item\(\) needs a concrete value"):
        tf.jit(lambda t: f"{t.sum():.2f}")(tf.ones(2))


def test_bfloat16_tensors_round_trip():
    x = tf.tensor([1.0, 2.5, -3.0], dtype=tf.bfloat16)
    assert_close((x * 2).numpy(), np.array([2.0, 5.0, -6.0]), "bfloat16")
    assert (x * 2).dtype is tf.bfloat16 and (x * 2.0).dtype is tf.bfloat16
