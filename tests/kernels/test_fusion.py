"""Kernel counts (fusion is asserted) and results of fused graphs against a float64 reference."""
import numpy as np
import pytest

from tritonflow import kernels
from kernel_helpers import Builder, assert_close, to_numpy, to_torch
from tritonflow import dtypes as D

F32 = D.float32


def run(graph, arrays, symbols=None):
    low = kernels.lower(graph)
    outs = low([to_torch(a) for a in arrays], symbols or {})
    return low, [to_numpy(o) for o in outs]


def softmax_graph(shape, dtype=F32, log=False):
    b = Builder("softmax")
    x = b.input("x", shape, dtype)
    keep = (shape[0], 1)
    m = b("reduce_max", x, dims=(1,), keepdim=True)
    d = b("sub", x, b("expand", m, shape=shape))
    e = b("exp", d)
    s = b("reduce_sum", e, dims=(1,), keepdim=True)
    if log:
        out = b("sub", d, b("expand", b("log", s), shape=shape))
    else:
        out = b("div", e, b("expand", s, shape=shape))
    assert s.shape == keep
    return b.finish(out)


def np_softmax(x, log=False):
    x = x.astype(np.float64)
    d = x - x.max(1, keepdims=True)
    if log:
        return d - np.log(np.exp(d).sum(1, keepdims=True))
    return np.exp(d) / np.exp(d).sum(1, keepdims=True)


def test_relu_mul_add_one_kernel_broadcast():
    b = Builder()
    a, bb, c = b.input("a", (5, 7)), b.input("b", (5, 7)), b.input("c", (7,))
    g = b.finish(b("relu", b("add", b("mul", a, bb), c)))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in ((5, 7), (5, 7), (7,))]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 1
    assert_close(out, np.maximum(xs[0].astype(np.float64) * xs[1] + xs[2], 0), F32)
    src = low.kernels[0].source
    assert "tl.constexpr" in src and "mask=xmask" in src and "a_ptr" in src


@pytest.mark.parametrize("dtype", [D.float32, D.float16, D.bfloat16])
@pytest.mark.parametrize("n", [37, 9000])
def test_softmax_one_kernel(dtype, n):
    rows = 3 if n > 8192 else 6
    g = softmax_graph((rows, n), dtype)
    x = np.random.default_rng(1).uniform(-4, 4, (rows, n)).astype(dtype.np)
    low, (out,) = run(g, [x])
    assert len(low.kernels) == 1
    assert_close(out, np_softmax(x), dtype, scale=4)


def test_log_softmax_one_kernel():
    g = softmax_graph((5, 19), F32, log=True)
    x = np.random.default_rng(2).standard_normal((5, 19)).astype(np.float32)
    low, (out,) = run(g, [x])
    assert len(low.kernels) == 1
    assert_close(out, np_softmax(x, log=True), F32, scale=4)


def layer_norm_graph(shape, dtype, rms=False):
    b = Builder("norm")
    n = shape[-1]
    x = b.input("x", shape, dtype)
    w = b.input("w", (n,), dtype)
    bias = b.input("bias", (n,), dtype)
    xf = b("cast", x, dtype=F32)
    inv_n = b.const(1.0 / n)
    eps = b.const(1e-5)
    if rms:
        centered = xf
    else:
        mean = b("mul", b("reduce_sum", xf, dims=(1,), keepdim=True), inv_n)
        centered = b("sub", xf, b("expand", mean, shape=shape))
    var = b("mul", b("reduce_sum", b("mul", centered, centered), dims=(1,), keepdim=True), inv_n)
    rstd = b("rsqrt", b("add", var, eps))
    y = b("mul", centered, b("expand", rstd, shape=shape))
    y = b("mul", y, b("cast", w, dtype=F32))
    if not rms:
        y = b("add", y, b("cast", bias, dtype=F32))
    return b.finish(b("cast", y, dtype=dtype), rstd)


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("dtype", [D.float32, D.bfloat16])
def test_layer_norm_and_rms_norm_one_kernel(rms, dtype):
    shape = (7, 33)
    g = layer_norm_graph(shape, dtype, rms)
    rng = np.random.default_rng(3)
    x, w, bias = (rng.standard_normal(s).astype(dtype.np) for s in (shape, (33,), (33,)))
    low, (y, rstd) = run(g, [x, w, bias])
    assert len(low.kernels) == 1
    xf = x.astype(np.float64)
    c = xf if rms else xf - xf.mean(1, keepdims=True)
    r = 1 / np.sqrt((c * c).mean(1, keepdims=True) + 1e-5)
    want = c * r * w.astype(np.float64) + (0 if rms else bias.astype(np.float64))
    assert_close(y, want, dtype, scale=8)
    assert_close(rstd, r, F32, scale=8)


def test_column_sum_divided_one_kernel():
    b = Builder()
    x = b.input("x", (9, 6))
    g = b.finish(b("div", b("reduce_sum", x, dims=(0,), keepdim=False), b.const(9.0)))
    xs = np.random.default_rng(4).standard_normal((9, 6)).astype(np.float32)
    low, (out,) = run(g, [xs])
    assert len(low.kernels) == 1
    assert_close(out, xs.astype(np.float64).sum(0) / 9, F32, scale=4)


def test_transpose_add_non_contiguous_one_kernel_no_copy():
    import torch
    b = Builder()
    a, c = b.input("a", (4, 6)), b.input("b", (6, 4))
    g = b.finish(b("add", b("permute", a, perm=(1, 0)), c))
    rng = np.random.default_rng(5)
    base = rng.standard_normal((6, 4)).astype(np.float32)
    a_nc = to_torch(base).t()  # (4, 6), non-contiguous
    bb = rng.standard_normal((6, 4)).astype(np.float32)
    low = kernels.lower(g)
    (out,) = low([a_nc, to_torch(bb)], {})
    assert len(low.kernels) == 1
    assert_close(to_numpy(out), base.astype(np.float64) + bb, F32)
    assert isinstance(out, torch.Tensor)


def test_adam_update_one_kernel_three_outputs():
    b = Builder("adam")
    shape = (10, 3)
    p, g_, m, v = (b.input(n, shape) for n in ("p", "g", "m", "v"))
    b1, b2, lr, eps = b.const(0.9), b.const(0.999), b.const(1e-3), b.const(1e-8)
    one = b.const(1.0)
    m2 = b("add", b("mul", m, b1), b("mul", g_, b("sub", one, b1)))
    v2 = b("add", b("mul", v, b2), b("mul", b("mul", g_, g_), b("sub", one, b2)))
    p2 = b("sub", p, b("div", b("mul", m2, lr), b("add", b("sqrt", v2), eps)))
    graph = b.finish(p2, m2, v2)
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)] + [rng.uniform(0, 1, shape).astype(np.float32)]
    low, (pp, mm, vv) = run(graph, xs)
    assert len(low.kernels) == 1
    P, G, M, V = (a.astype(np.float64) for a in xs)
    M2 = M * 0.9 + G * (1 - 0.9)
    V2 = V * 0.999 + G * G * (1 - 0.999)
    assert_close(mm, M2, F32)
    assert_close(vv, V2, F32, scale=2)
    assert_close(pp, P - M2 * 1e-3 / (np.sqrt(V2) + 1e-8), F32, scale=2)


def test_tanh_gelu_and_swiglu_one_kernel():
    b = Builder()
    x, gate = b.input("x", (3, 11)), b.input("gate", (3, 11))
    inner = b("mul", b("add", x, b("mul", b("mul", b("mul", x, x), x), b.const(0.044715))), b.const(0.7978845608))
    gelu = b("mul", b("mul", x, b.const(0.5)), b("add", b.const(1.0), b("tanh", inner)))
    swiglu = b("mul", b("mul", gate, b("sigmoid", gate)), x)
    g = b.finish(gelu)
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((3, 11)).astype(np.float32) for _ in range(2)]
    low, (out,) = run(g, xs[:1] + xs[1:])
    assert len(low.kernels) == 1
    X = xs[0].astype(np.float64)
    want = 0.5 * X * (1 + np.tanh(0.7978845608 * (X + 0.044715 * X ** 3)))
    assert_close(out, want, F32, scale=4)
    b.graph.outputs = [swiglu]
    low, (out,) = run(b.graph, xs)
    assert len(low.kernels) == 1
    G = xs[1].astype(np.float64)
    assert_close(out, G / (1 + np.exp(-G)) * X, F32, scale=4)


def test_cross_entropy_at_most_two_kernels():
    n, c = 6, 13
    b = Builder("ce")
    logits = b.input("logits", (n, c))
    target = b.input("target", (n,), D.int64)
    m = b("reduce_max", logits, dims=(1,), keepdim=True)
    d = b("sub", logits, b("expand", m, shape=(n, c)))
    lse = b("add", b("log", b("reduce_sum", b("exp", d), dims=(1,), keepdim=True)), m)
    logp = b("sub", logits, b("expand", lse, shape=(n, c)))
    picked = b("gather", logp, b("reshape", target, shape=(n, 1)), dim=1)
    loss = b("div", b("neg", b("reduce_sum", picked, dims=(0, 1), keepdim=False)), b.const(float(n)))
    g = b.finish(loss)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((n, c)).astype(np.float32)
    t = rng.integers(0, c, n).astype(np.int64)
    low, (out,) = run(g, [x, t])
    assert len(low.kernels) <= 2
    X = x.astype(np.float64)
    lp = X - np.log(np.exp(X - X.max(1, keepdims=True)).sum(1, keepdims=True)) - X.max(1, keepdims=True)
    assert_close(out, -lp[np.arange(n), t].mean(), F32, scale=8)


def test_dynamic_batch_one_kernel_serves_many_sizes():
    import sympy
    s0 = sympy.Symbol("s0", integer=True, positive=True)
    b = Builder()
    x = b.input("x", (s0, 5))
    y = b.input("y", (5,))
    g = b.finish(b("mul", b("exp", x), y))
    low = kernels.lower(g)
    rng = np.random.default_rng(9)
    yy = rng.standard_normal(5).astype(np.float32)
    for n in (1, 3, 8):
        xx = rng.standard_normal((n, 5)).astype(np.float32)
        (out,) = low([to_torch(xx), to_torch(yy)], {"s0": n})
        assert_close(to_numpy(out), np.exp(xx.astype(np.float64)) * yy, F32)
    assert len(low.kernels) == 1 and "s0" in low.kernels[0].source


def test_reduction_no_one_reads_is_not_a_kernel():
    """argmin over a size-1 dim is 0 whatever it reads: the reduce_max under it computes nothing
    anyone needs, so no kernel is generated for it (fuzz seed 1, program 271)."""
    b = Builder()
    x = b.input("x", (2, 1), D.int32)
    g = b.finish(b("argmin", b("reduce_max", x, dims=(0, 1), keepdim=True), dims=(1,), keepdim=False))
    low, (out,) = run(g, [np.array([[1], [2]], np.int32)])
    assert [k.kind for k in low.kernels] == ["pointwise"]
    np.testing.assert_array_equal(out, np.zeros(1, np.int64))
