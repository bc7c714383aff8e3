"""tritonflow.utils.checkpoint: gradients equal the un-checkpointed ones (eager and jitted on both
backends, a GPT-2 block with dropout so the recomputation must replay the random stream), the
compiled forward saves the region's inputs only, the tape keeps no region activations, and the
region may take/return nested and non-tensor values, read outside parameters and autocast.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonflow as tf
from tritonflow.models import GPT2Config
from tritonflow.models.gpt2 import GPT2Block
from tritonflow.utils.checkpoint import CheckpointError

F = tf.nn.functional


def _block(dropout: float = 0.0):
    tf.manual_seed(0)
    config = GPT2Config(vocab_size=16, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                        resid_pdrop=dropout, embd_pdrop=0.0, attn_pdrop=dropout)
    return GPT2Block(config, 0)


def _input(seed=0, shape=(2, 8, 16)):
    return tf.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), requires_grad=True)


def _grads(run, block, x):
    """(output, d x, d params) of sum(run(x)^2), from a fixed random stream."""
    x.grad = None
    for p in block.parameters():
        p.grad = None
    tf.manual_seed(11)
    y = run(x)
    (y * y).sum().backward()
    return y.detach().numpy(), x.grad.numpy(), [p.grad.numpy() for p in block.parameters()]


def _assert_same(a, b, atol):
    for u, v in zip([a[0], a[1]] + a[2], [b[0], b[1]] + b[2]):
        np.testing.assert_allclose(u, v, rtol=0, atol=atol)


def test_eager_gradients_equal_with_dropout_replayed():
    block, x = _block(dropout=0.3), _input()
    plain = _grads(block, block, x)
    checked = _grads(lambda h: tf.utils.checkpoint(block, h), block, x)
    _assert_same(checked, plain, 0)          # the same ops on the same values and random numbers
    again = _grads(lambda h: tf.utils.checkpoint.checkpoint(block, h, preserve_rng_state=False), block, x)
    assert np.abs(again[1] - plain[1]).max() > 0   # without replay the masks differ: replay is real


def test_eager_tape_keeps_only_the_region_inputs():
    block, x = _block(), _input()
    y = tf.utils.checkpoint(block, x)
    node = y._grad_fn
    assert node.name.startswith("checkpoint(") and [id(t) for t in node.saved] == [id(x)]
    assert len(node.edges) == 1 + len(list(block.parameters()))   # x and every parameter, nothing inside
    assert all(parent is None for parent, _, _ in node.edges)


def test_jitted_gradients_equal_and_forward_saves_no_activations(backend):
    block, x = _block(dropout=0.3), _input(1)
    plain = _grads(block, block, x)
    compiled_plain = tf.jit(lambda h: block(h), backend=backend)
    compiled = tf.jit(lambda h: tf.utils.checkpoint(block, h), backend=backend)
    _assert_same(_grads(compiled, block, x), plain, 2e-5)
    _assert_same(_grads(compiled_plain, block, x), plain, 2e-5)
    saved = [_saved_ops(f) for f in (compiled_plain, compiled)]
    assert len(saved[0]) >= 4 and {"matmul", "attention"} & set(saved[0])
    # The backward recomputes the block from its input: nothing computed is kept, at most the
    # fills (tf.full) the trace shares between forward and recomputation, which the numpy backend
    # keeps rather than refills (its recompute policy: views only).
    assert set(saved[1]) <= ({"full"} if backend == "numpy" else set()), saved[1]


def _saved_ops(jitted) -> list:
    runner = next(iter(jitted._variants.values()))[0].backward
    outputs = runner.forward_graph.outputs
    return [n.op for n in outputs[len(outputs) - runner.n_saved:]]


def test_nested_outputs_outside_parameters_and_autograd_grad():
    w = tf.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), requires_grad=True)
    x = _input(2, (5, 3))
    c = tf.tanh(x * 0.5)          # a non-leaf tensor from outside the region, read inside it

    def region(a, scale, extra):
        h = tf.sigmoid(a @ w) * scale
        return {"h": h, "pair": (h.sum(1) + c.sum(), extra["k"])}

    def loss(fn):
        out = fn(x, 2.0, {"k": "label"})
        assert out["pair"][1] == "label"
        return (out["h"] ** 2).sum() + out["pair"][0].sum()

    want = tf.autograd.grad(loss(region), [x, w], retain_graph=True)   # c's tape is used again
    got = tf.autograd.grad(loss(lambda *a: tf.utils.checkpoint(region, *a)), [x, w])
    tx, tw = torch.tensor(x.detach().numpy(), dtype=torch.float64, requires_grad=True), torch.tensor(
        w.detach().numpy(), dtype=torch.float64, requires_grad=True)
    th = torch.sigmoid(tx @ tw) * 2.0
    ((th ** 2).sum() + (th.sum(1) + torch.tanh(tx * 0.5).sum()).sum()).backward()
    for g, v, t in zip(got, want, (tx, tw)):
        # the same terms, summed in another order where x's two paths (inside, c) meet: an ulp apart
        np.testing.assert_allclose(g.numpy(), v.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(g.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_region_returning_its_input_nested_regions_and_no_grad():
    x = _input(3, (4,))
    y = tf.utils.checkpoint(lambda a: (a, a * 3), x)
    (y[0].sum() + y[1].sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(4, 4.0, np.float32))
    x.grad = None
    inner = lambda a: tf.exp(a) * a  # noqa: E731
    tf.utils.checkpoint(lambda a: tf.utils.checkpoint(inner, a).sum() * 2, x).backward()
    xv = x.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(xv) * (1 + xv), rtol=1e-6)
    with tf.no_grad():
        assert not tf.utils.checkpoint(inner, x).requires_grad


def test_autocast_region_is_recomputed_under_its_autocast():
    w = tf.tensor(np.random.default_rng(4).uniform(-1, 1, (8, 8)).astype(np.float32), requires_grad=True)
    x = _input(5, (4, 8))
    region = lambda a: F.gelu(a @ w)  # noqa: E731
    with tf.autocast("cpu", dtype=tf.bfloat16):
        want = tf.autograd.grad((region(x).float() ** 2).sum(), [x, w])
        out = tf.utils.checkpoint(region, x)
        assert out.dtype is tf.bfloat16
        got = tf.autograd.grad((out.float() ** 2).sum(), [x, w])
    for g, v in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), v.numpy())


def test_a_region_that_changes_between_runs_is_a_clear_error():
    x = _input(6, (4,))
    calls = []

    def moody(a):
        calls.append(1)
        return a * 2 if len(calls) == 1 else tf.cat([a, a]) * 2

    y = tf.utils.checkpoint(moody, x)
    with pytest.raises(CheckpointError, match=r"recomputing .*moody.* gave output 0 as float32\[8\], the forward "
                                              r"gave float32\[4\]"):
        y.sum().backward()
