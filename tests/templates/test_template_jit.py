"""Compiled functions end to end: kernel counts (fusion is asserted), the pattern pass, errors, gradients.

Results are compared with the NumPy backend (the interpreter runs the same IR with each op's
NumPy meaning) and with float64 NumPy written here.
"""
import math

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tests.kernels.kernel_helpers import assert_close
from tritonflow import dtypes as D
from tritonflow.nn.functional import fused_attention as attention

RNG = np.random.default_rng(3)


def t(*shape, dtype=np.float32, requires_grad=False):
    x = tf.from_numpy(RNG.uniform(-1, 1, shape).astype(dtype))
    if requires_grad:
        x.requires_grad = True
    return x


def compiled_kernels(jf, *args) -> list:
    """The kernels of `jf`'s compiled entry for `args` (explain() when the core provides it)."""
    try:
        from tritonflow.explain import explain
    except ImportError:  # explain not written yet: read the compiled entry's runner
        jf(*args)
        entry = next(iter(jf.entries.values()))
        return list(entry.runner.kernels)
    return list(explain(jf, *args).kernels)


def graph_ops(jf) -> list:
    entry = next(iter(jf.entries.values()))
    return [n.op for n in entry.graph.nodes]


def test_linear_bias_gelu_is_one_kernel():
    x, w, b = t(19, 24), t(40, 24), t(40)
    fn = tf.jit(lambda x, w, b: F.gelu(F.linear(x, w, b)), backend="triton")
    kernels = compiled_kernels(fn, x, w, b)
    assert len(kernels) == 1 and kernels[0].kind == "matmul"
    h = x.numpy().astype(np.float64) @ w.numpy().T.astype(np.float64) + b.numpy()
    want = h * 0.5 * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    assert_close(fn(x, w, b).numpy(), want, D.float32, scale=24)


def test_mlp_linear_gelu_linear_is_two_kernels():
    mlp = tf.nn.Sequential(tf.nn.Linear(24, 48), tf.nn.GELU(), tf.nn.Linear(48, 16))
    x = t(21, 24)
    fn = tf.jit(lambda x: mlp(x), backend="triton")
    kernels = compiled_kernels(fn, x)
    assert [k.kind for k in kernels] == ["matmul", "matmul"]
    w1, b1, w2, b2 = (p.detach().numpy().astype(np.float64) for p in mlp.parameters())
    h = x.numpy().astype(np.float64) @ w1.T + b1
    want = (h * 0.5 * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))) @ w2.T + b2
    # The parameters require grad, so the compiled output does too (as it would eagerly).
    assert_close(fn(x).detach().numpy(), want, D.float32, scale=48)


@pytest.mark.parametrize("dtype", [np.float32, D.bfloat16.np], ids=["float32", "bfloat16"])
def test_sdpa_causal_forward_is_one_kernel(dtype):
    q, k, v = t(2, 2, 13, 16, dtype=dtype), t(2, 2, 13, 16, dtype=dtype), t(2, 2, 13, 16, dtype=dtype)
    fn = tf.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), backend="triton")
    kernels = compiled_kernels(fn, q, k, v)
    assert [k.kind for k in kernels] == ["attention"]
    assert graph_ops(fn) == ["attention"]
    qq, kk, vv = (a.numpy().astype(np.float64) for a in (q, k, v))
    s = qq @ np.swapaxes(kk, -1, -2) / 4.0
    s = np.where(np.tril(np.ones((13, 13), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ vv
    got = fn(q, k, v).numpy().astype(np.float64)
    # bfloat16: the probabilities are rounded to bfloat16 before the p @ v product (as in every
    # flash kernel), so small outputs carry an absolute error of a few bfloat16 ulps of 1.
    atol, rtol = (2e-2, 2e-2) if dtype is not np.float32 else (1e-5, 1e-5)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def written_out(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1])) + mask
    return F.softmax(scores, -1) @ v


def test_written_out_attention_is_one_kernel():
    q, k, v, mask = t(3, 11, 8), t(3, 14, 8), t(3, 14, 8), t(11, 14)
    fn = tf.jit(written_out, backend="triton")
    kernels = compiled_kernels(fn, q, k, v, mask)
    assert [k.kind for k in kernels] == ["attention"]
    qq, kk, vv, mm = (a.numpy().astype(np.float64) for a in (q, k, v, mask))
    s = qq @ np.swapaxes(kk, -1, -2) / math.sqrt(8) + mm
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ vv
    assert_close(fn(q, k, v, mask).numpy(), want, D.float32, scale=28)


def test_pattern_left_alone_when_probabilities_are_also_returned():
    def both(q, k, v):
        p = F.softmax(q @ k.transpose(-2, -1) * 0.5, -1)
        return p @ v, p
    fn = tf.jit(both, backend="numpy")
    fn(t(4, 8), t(5, 8), t(5, 8))
    assert "attention" not in graph_ops(fn)


def test_sdpa_dropout_matches_written_out_stream():
    q, k, v = t(2, 9, 8), t(2, 12, 8), t(2, 12, 8)
    fused = tf.jit(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.3), backend="triton")
    tf.manual_seed(4)
    got = fused(q, k, v).numpy()
    assert graph_ops(fused) == ["attention"]
    tf.manual_seed(4)
    eager = F.scaled_dot_product_attention(q, k, v, dropout_p=0.3).numpy()   # written out, eager NumPy
    assert_close(got, eager.astype(np.float64), D.float32, scale=24)


def test_compiled_attention_gradients_use_fused_backward():
    q, k, v = (t(2, 10, 8, requires_grad=True) for _ in range(3))
    weights = tf.from_numpy(RNG.standard_normal((2, 10, 8)).astype(np.float32))

    def loss(q, k, v):
        return (F.scaled_dot_product_attention(q, k, v, is_causal=True) * weights).sum()

    tf.jit(loss, backend="triton")(q, k, v).backward()
    got = [a.grad.numpy().copy() for a in (q, k, v)]
    for a in (q, k, v):
        a.grad = None
    loss(q, k, v).backward()    # eager, written out
    for g, a in zip(got, (q, k, v)):
        assert_close(g, a.grad.numpy().astype(np.float64), D.float32, scale=40)


# ---------------------------------------------------------------- errors at trace time

def test_matmul_inner_dimension_error_names_op_shapes_and_line():
    fn = tf.jit(lambda a, b: a @ b, backend="triton")
    with pytest.raises(tf.ShapeError) as info:
        fn(t(3, 4), t(5, 6))
    message = str(info.value)
    assert "matmul" in message and "(3, 4)" in message and "(5, 6)" in message
    assert "test_template_jit.py" in message


@pytest.mark.parametrize("make,error,words", [
    (lambda: (t(2, 4, 300), t(2, 5, 300), t(2, 5, 300), None), tf.ShapeError, ["head dim 300"]),
    (lambda: (tf.from_numpy(np.ones((2, 4, 8), np.int32)),) * 3 + (None,), tf.DTypeError, ["int32"]),
    (lambda: (t(2, 4, 8), t(2, 5, 8), t(2, 5, 8), t(4, 6)), tf.ShapeError, ["attn_mask", "(4, 6)"]),
    (lambda: (t(2, 4, 8), t(2, 5, 8), t(2, 5, 8), tf.from_numpy(np.ones((4, 5), np.int64))), tf.DTypeError,
     ["attn_mask", "int64"]),
], ids=["head-dim", "integer-operands", "mask-shape", "mask-dtype"])
def test_attention_errors_at_trace_time(make, error, words):
    q, k, v, mask = make()
    fn = tf.jit(lambda q, k, v: attention(q, k, v, mask), backend="triton")
    with pytest.raises(error) as info:
        fn(q, k, v)
    message = str(info.value)
    assert "attention" in message and "test_template_jit.py" in message
    for w in words:
        assert w in message
