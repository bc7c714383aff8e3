"""F.cross_entropy against torch.nn.functional.cross_entropy (float64 on CPU): class weights, label
smoothing, ignore_index and every reduction, eager and jitted on both backends, values and gradients.

The smoothing term must carry the class weights (torch: -sum_c w_c * logp_c / C), and "mean"
divides both terms by the summed weights of the targets that are not ignored.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import tritonflow as tf
from helpers import assert_close
from tritonflow import dtypes as D

F = tf.nn.functional


def test_issue_example_weighted_smoothing():
    logits, target, weight = tf.tensor([[1.0, 2.0, 0.5]]), tf.tensor([1]), tf.tensor([0.5, 1.0, 2.0])
    for reduction in ("mean", "sum", "none"):
        got = F.cross_entropy(logits, target, weight=weight, label_smoothing=0.1, reduction=reduction)
        # by hand: 0.9 * nll + 0.1 * (-sum_c w_c logp_c) / 3, one target of weight 1 (torch: 0.58877)
        logp = np.log(np.exp([1.0, 2.0, 0.5]) / np.exp([1.0, 2.0, 0.5]).sum())
        by_hand = 0.9 * -logp[1] + 0.1 * -(np.array([0.5, 1.0, 2.0]) * logp).sum() / 3
        np.testing.assert_allclose(np.asarray(got.numpy()).reshape(-1), [by_hand], rtol=1e-6)
        assert abs(by_hand - 0.58877) < 5e-6


def _case(shape, seed):
    """Logits, integer targets with some ignored (-100 or 2), class weights, probability targets."""
    r = np.random.default_rng(seed)
    classes = shape[1] if len(shape) > 1 else shape[0]
    logits = r.standard_normal(shape) * 2
    target_shape = (shape[0],) + tuple(shape[2:]) if len(shape) > 1 else ()
    target = r.integers(0, classes, target_shape)
    weight = r.uniform(0.2, 2.0, classes)
    probs = r.random(shape)
    probs = probs / probs.sum(1 if len(shape) > 1 else 0, keepdims=True)
    return logits, target, weight, probs


def _cotangent(logits, target, seed, **kw):
    """A random incoming gradient shaped like torch's loss for these arguments."""
    kw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    shape = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target), **kw).shape
    return np.random.default_rng(seed).uniform(0.5, 1.5, tuple(shape))


def _torch(logits, target, grad_of_loss, **kw):
    x = torch.tensor(logits, requires_grad=True)
    t = torch.tensor(target)
    kw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    loss = torch.nn.functional.cross_entropy(x, t, **kw)
    loss.backward(torch.tensor(grad_of_loss).reshape(loss.shape))
    return loss.detach().numpy(), x.grad.numpy()


def _ours(fn, logits, target, grad_of_loss, dtype, **kw):
    x = tf.tensor(logits.astype(dtype.np), requires_grad=True)
    t = tf.tensor(target)
    kw = {k: (tf.tensor(v.astype(dtype.np)) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    loss = fn(x, t, **kw)
    loss.backward(tf.tensor(np.asarray(grad_of_loss, dtype.np).reshape(tuple(loss.shape))))
    return np.asarray(loss.detach().numpy()), np.asarray(x.grad.numpy())


REDUCTIONS = ("mean", "sum", "none")
SHAPES = [(6, 5), (3, 4, 2), (4,)]   # (N, C), (N, C, d1), (C,) with a 0-d target


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_indices_weight_smoothing_ignore_index_eager(shape, reduction):
    logits, base_target, weight, _ = _case(shape, 3)
    for w, s, ignore in itertools.product((None, weight), (0.0, 0.15), (-100, 1)):
        target = base_target.copy()
        if target.ndim:
            target.reshape(-1)[::3] = ignore     # some targets ignored (1 is also a class)
        kw = {"weight": w, "label_smoothing": s, "ignore_index": ignore, "reduction": reduction}
        kw = {k: v for k, v in kw.items() if v is not None}
        g = _cotangent(logits, target, 1, **kw)
        want, want_grad = _torch(logits, target, g, **kw)
        got, got_grad = _ours(F.cross_entropy, logits, target, g, D.float64, **kw)
        assert got.shape == want.shape, (kw, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, err_msg=str(kw))
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-11, atol=1e-13, err_msg=str(kw))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_probability_targets_with_weight_and_smoothing(reduction):
    logits, _, weight, probs = _case((5, 4), 7)
    for w, s in itertools.product((None, weight), (0.0, 0.2)):
        kw = {"label_smoothing": s, "reduction": reduction, **({"weight": w} if w is not None else {})}
        g = np.ones(()) if reduction != "none" else np.linspace(0.5, 1.5, 5)
        x = torch.tensor(logits, requires_grad=True)
        tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        want = torch.nn.functional.cross_entropy(x, torch.tensor(probs), **tkw)
        want.backward(torch.tensor(g).reshape(want.shape))
        xt = tf.tensor(logits, requires_grad=True)
        okw = {k: (tf.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        got = F.cross_entropy(xt, tf.tensor(probs), **okw)
        got.backward(tf.tensor(g.reshape(tuple(got.shape))))
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12, err_msg=str(kw))
        np.testing.assert_allclose(xt.grad.numpy(), x.grad.numpy(), rtol=1e-11, atol=1e-13, err_msg=str(kw))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_jitted_loss_and_gradient_match_torch(backend, reduction):
    """Compiled forward and backward, float32, on each backend."""
    logits, target, weight, _ = _case((7, 5), 11)
    target[[1, 4]] = 2                      # ignored below
    kw = {"weight": weight, "label_smoothing": 0.1, "ignore_index": 2, "reduction": reduction}
    g = _cotangent(logits, target, 2, **kw)
    want, want_grad = _torch(logits.astype(np.float32).astype(np.float64), target, g,
                             **dict(kw, weight=weight.astype(np.float32).astype(np.float64)))
    loss = tf.jit(lambda x, t, w: F.cross_entropy(x, t, weight=w, label_smoothing=0.1, ignore_index=2,
                                                  reduction=reduction), backend=backend)
    got, got_grad = _ours(loss, logits, target, g, D.float32, w=weight)
    assert_close(got, want, D.float32, rtol_scale=8)
    assert_close(got_grad, want_grad, D.float32, rtol_scale=8)


def test_all_targets_ignored_mean_is_nan_like_torch():
    logits, target, weight, _ = _case((3, 4), 5)
    target[:] = -100
    for w in (None, weight):
        kw = {"label_smoothing": 0.1, **({"weight": w} if w is not None else {})}
        want = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(target),
                                                 **{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v)
                                                    for k, v in kw.items()})
        got = F.cross_entropy(tf.tensor(logits), tf.tensor(target),
                              **{k: (tf.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()})
        assert np.isnan(want.item()) and np.isnan(float(got.numpy()))


def test_bad_weight_is_a_clear_error():
    logits, target, _, _ = _case((3, 4), 5)
    with pytest.raises(tf.ShapeError, match=r"cross_entropy: weight \(3,\) must hold one weight per class \(4,\)"):
        F.cross_entropy(tf.tensor(logits), tf.tensor(target), weight=tf.ones(3, dtype=tf.float64))
    with pytest.raises(tf.DTypeError, match="cross_entropy: weight must be a floating point tensor"):
        F.cross_entropy(tf.tensor(logits), tf.tensor(target), weight=tf.tensor([1, 2, 3, 4]))
