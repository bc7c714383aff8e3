"""Regressions found by other suites running the triton backend: each test names the bug it pins.

References are float64 NumPy (np.power and np.log1p define the IEEE special cases).
"""
import numpy as np
import pytest

from tritonflow import kernels
from kernel_helpers import Builder, assert_close, to_numpy, to_torch
from tritonflow import dtypes as D

F32 = D.float32
SPECIALS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0, -1.0, 1.5, -2.5, 0.5, 2.0, -3.0]


def _run(graph, arrays):
    low = kernels.lower(graph)
    return low, [to_numpy(o) for o in low([to_torch(a) for a in arrays], {})]


def _same_special(got, want):
    """Bitwise-level agreement on special values: NaN positions, infinities, signed zeros."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN positions differ"
    finite = ~np.isnan(want)
    assert np.array_equal(np.isinf(got[finite]), np.isinf(want[finite])), "infinities differ"
    zero = finite & (want == 0)
    assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero])), "signs of zeros differ"
    close = np.isclose(got[finite], want[finite], rtol=1e-5, atol=0)
    assert close.all(), (got[finite][~close], want[finite][~close])


@pytest.mark.parametrize("dtype", [D.float32, D.float64])
def test_pow_special_values_match_numpy(dtype):
    a, b = np.meshgrid(np.asarray(SPECIALS), np.asarray(SPECIALS), indexing="ij")
    a, b = a.astype(dtype.np), b.astype(dtype.np)
    g = Builder("pow")
    x, y = g.input("a", a.shape, dtype), g.input("b", b.shape, dtype)
    _, (out,) = _run(g.finish(g("pow", x, y)), [a, b])
    with np.errstate(all="ignore"):
        want = np.power(a.astype(np.float64), b.astype(np.float64))
    _same_special(out, want)


def test_log1p_special_values_match_numpy():
    x = np.asarray(SPECIALS + [-1.0, -1.5, 1e-30], np.float32)
    g = Builder("log1p")
    _, (out,) = _run(g.finish(g("log1p", g.input("x", x.shape))), [x])
    with np.errstate(all="ignore"):
        _same_special(out, np.log1p(x.astype(np.float64)))


@pytest.mark.parametrize("op", ["sqrt", "rsqrt"])
def test_float64_sqrt_compiles(op):
    # tl.sqrt_rn accepts float32 only.
    x = np.asarray([0.25, 2.0, 9.0, 1e-300], np.float64)
    g = Builder(op)
    _, (out,) = _run(g.finish(g(op, g.input("x", x.shape, D.float64))), [x])
    want = np.sqrt(x) if op == "sqrt" else 1 / np.sqrt(x)
    np.testing.assert_allclose(out, want, rtol=1e-15)


def test_shifted_index_divided_prints_parenthesized():
    # pad-left then reshape: the input index is (i - 1) // 2, (i - 1) % 2. Printed without
    # parentheses it read `i - 1 // 2` (= i) and the kernel loaded the wrong elements.
    b = Builder()
    x = b.input("x", (3, 2))
    padded = b("pad", b("reshape", x, shape=(6,)), pads=((1, 0),), value=0.0)
    square = b("reshape", b("pad", padded, pads=((0, 1),), value=0.0), shape=(4, 2))
    g = b.finish(b("mul", square, b.const(2.0)))
    xs = np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    low, (out,) = _run(g, [xs])
    want = np.concatenate([[0.0], xs.ravel(), [0.0]]).reshape(4, 2) * 2
    assert_close(out, want, F32)
    assert len(low.kernels) == 1


def test_graph_output_that_is_an_input_gets_its_own_buffer():
    # permute(permute(x)) simplifies to x: the output is a copy, its pointer must not share x's name.
    b = Builder()
    x = b.input("x", (5, 3))
    g = b.finish(x)
    xs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    import torch
    inp = to_torch(xs)
    low = kernels.lower(g)
    (out,) = low([inp], {})
    assert out.data_ptr() != inp.data_ptr()
    assert_close(to_numpy(out), xs.astype(np.float64), F32)
    source = low.kernels[0].source
    assert source.count("x_ptr,") == 1 and source.count("out0_ptr,") == 1
    assert isinstance(out, torch.Tensor)


def test_reduction_group_stores_a_materialized_matmul_operand():
    # softmax(x) @ w: the softmax output is materialized as the reduction kernel's epilogue;
    # the kernel must compute it, not load the buffer it is about to write.
    b = Builder("attn_like")
    x, w = b.input("x", (6, 5)), b.input("w", (5, 4))
    m = b("reduce_max", x, dims=(1,), keepdim=True)
    e = b("exp", b("sub", x, b("expand", m, shape=(6, 5))))
    s = b("reduce_sum", e, dims=(1,), keepdim=True)
    p = b("div", e, b("expand", s, shape=(6, 5)))
    g = b.finish(b("matmul", p, w))
    rng = np.random.default_rng(1)
    xs, ws = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    low, (out,) = _run(g, [xs, ws])
    X = xs.astype(np.float64)
    P = np.exp(X - X.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    assert_close(out, P @ ws, F32, scale=16)
    assert len(low.kernels) == 2


def test_neg_of_zero_is_negative_zero():
    # Triton's unary minus is `0 - x`: +0.0 for both zeros.
    x = np.asarray([0.0, -0.0, 1.5, float("inf"), float("nan")], np.float32)
    g = Builder("neg")
    _, (out,) = _run(g.finish(g("neg", g.input("x", x.shape))), [x])
    _same_special(out, -x.astype(np.float64))
