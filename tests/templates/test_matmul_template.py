"""The matmul template against float64 NumPy under Triton's interpreter, and its kernel counts.

Sizes are not multiples of the interpreter's 32x32x32 tiles, so every mask is exercised;
operands arrive transposed, sliced, batch-broadcast and as non-contiguous graph inputs.
"""
import numpy as np
import pytest

from tritonflow import kernels
from tests.kernels.kernel_helpers import Builder, assert_close, to_numpy, to_torch
from tritonflow import dtypes as D
from tritonflow.target import default_target

F32, F16, BF16 = D.float32, D.float16, D.bfloat16
RNG = np.random.default_rng(5)


def rand(shape, dtype=F32):
    return RNG.uniform(-1, 1, shape).astype(dtype.np)


def run(graph, arrays):
    low = kernels.lower(graph)
    outs = low([to_torch(a) for a in arrays], {})
    return low, [to_numpy(o) for o in outs]


def f64(a):
    return a.astype(np.float64)


def matmul_tol(k):
    # Products of K terms: the reference rounds differently, so rtol grows with K.
    return max(1.0, k / 8)


@pytest.mark.parametrize("dtype", [F32, F16, BF16])
def test_2d_tails_one_kernel(dtype):
    b = Builder()
    x, w = b.input("x", (37, 45), dtype), b.input("w", (45, 51), dtype)
    g = b.finish(b("matmul", x, w))
    xs = [rand((37, 45), dtype), rand((45, 51), dtype)]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 1 and "strided+strided" in low.kernels[0].source
    assert_close(out, f64(xs[0]) @ f64(xs[1]), dtype, scale=matmul_tol(45))


def test_transposed_operands_are_index_math():
    # x^T @ w^T: both operands are permutes of inputs, read with swapped strides, never copied.
    b = Builder()
    x, w = b.input("x", (40, 19)), b.input("w", (33, 40))
    g = b.finish(b("matmul", b("permute", x, perm=(1, 0)), b("permute", w, perm=(1, 0))))
    xs = [rand((40, 19)), rand((33, 40))]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 1
    src = low.kernels[0].source
    assert "strided+strided" in src and "a_ptrs += 19 * BLOCK_K" in src
    assert_close(out, f64(xs[0]).T @ f64(xs[1]).T, F32, scale=matmul_tol(40))


def test_batched_broadcast_and_sliced_operand():
    # (2, 1, 17, 20) @ (3, 20, 18)[:, ::1, 2:20] -> (2, 3, 17, 18)
    b = Builder()
    x, w = b.input("x", (2, 1, 17, 20)), b.input("w", (3, 20, 20))
    ws = b("slice", w, start=(0, 0, 2), step=(1, 1, 1), shape=(3, 20, 18))
    g = b.finish(b("matmul", x, ws))
    xs = [rand((2, 1, 17, 20)), rand((3, 20, 20))]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 1
    assert_close(out, np.matmul(f64(xs[0]), f64(xs[1])[:, :, 2:]), F32, scale=matmul_tol(20))


def test_non_contiguous_input_strides_are_arguments():
    b = Builder()
    x, w = b.input("x", (21, 34)), b.input("w", (34, 23))
    g = b.finish(b("matmul", x, w))
    xs = [rand((21, 34)), rand((34, 23))]
    low = kernels.lower(g)
    tx = to_torch(xs[0].T.copy()).t()          # same values, column-major storage
    tw = to_torch(xs[1].T.copy()).t()
    (out,) = low([tx, tw], {})
    assert len(low.kernels) == 1
    assert_close(to_numpy(out), f64(xs[0]) @ f64(xs[1]), F32, scale=matmul_tol(34))


def test_reshape_splitting_k_uses_index_math():
    # K = 4 * 9 comes from merging two dims of a permuted tensor: addresses are recomputed per step.
    b = Builder()
    x = b.input("x", (9, 4, 13))
    w = b.input("w", (36, 10))
    xk = b("reshape", b("permute", x, perm=(2, 1, 0)), shape=(13, 36))
    g = b.finish(b("matmul", xk, w))
    xs = [rand((9, 4, 13)), rand((36, 10))]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 1
    want = f64(xs[0]).transpose(2, 1, 0).reshape(13, 36) @ f64(xs[1])
    assert_close(out, want, F32, scale=matmul_tol(36))


@pytest.mark.parametrize("dtype", [D.float64, D.int32])
def test_non_tensor_core_dtypes(dtype):
    b = Builder()
    x, w = b.input("x", (7, 5), dtype), b.input("w", (5, 6), dtype)
    g = b.finish(b("matmul", x, w))
    if dtype.is_integer:
        xs = [RNG.integers(-5, 5, (7, 5)).astype(dtype.np), RNG.integers(-5, 5, (5, 6)).astype(dtype.np)]
    else:
        xs = [rand((7, 5), dtype), rand((5, 6), dtype)]
    low, (out,) = run(g, xs)
    assert_close(out, (xs[0].astype(np.float64) @ xs[1].astype(np.float64)), dtype)


# ---------------------------------------------------------------- epilogue fusion

def test_bias_gelu_residual_scale_cast_epilogue_one_kernel():
    b = Builder()
    x, w = b.input("x", (33, 40), BF16), b.input("w", (40, 24), BF16)
    bias, res = b.input("bias", (24,), BF16), b.input("res", (33, 24), F32)
    h = b("add", b("matmul", x, w), bias)
    h = b("cast", h, dtype=F32)
    gelu = b("mul", b("mul", h, b.const(0.5)),
             b("add", b("erf", b("mul", h, b.const(0.7071067811865476))), b.const(1.0)))
    out = b("cast", b("mul", b("add", gelu, res), b.const(2.0)), dtype=BF16)
    g = b.finish(out)
    xs = [rand((33, 40), BF16), rand((40, 24), BF16), rand((24,), BF16), rand((33, 24))]
    low, (got,) = run(g, xs)
    assert len(low.kernels) == 1
    from math import erf
    hh = f64(xs[0]) @ f64(xs[1]) + f64(xs[2])
    ref = (hh * 0.5 * (1 + np.vectorize(erf)(hh / np.sqrt(2))) + f64(xs[3])) * 2
    assert_close(got, ref, BF16, scale=matmul_tol(40))
    assert "buf0" not in low.kernels[0].source  # the raw product never touches memory


def test_product_stored_when_also_an_output():
    b = Builder()
    x, w = b.input("x", (18, 20)), b.input("w", (20, 22))
    mm = b("matmul", x, w)
    g = b.finish(mm, b("relu", mm))
    xs = [rand((18, 20)), rand((20, 22))]
    low, (raw, act) = run(g, xs)
    assert len(low.kernels) == 1
    want = f64(xs[0]) @ f64(xs[1])
    assert_close(raw, want, F32, scale=matmul_tol(20))
    assert_close(act, np.maximum(want, 0), F32, scale=matmul_tol(20))


def test_mlp_two_kernels_activation_is_first_epilogue():
    b = Builder()
    x = b.input("x", (20, 24))
    w1, b1 = b.input("w1", (40, 24)), b.input("b1", (40,))
    w2, b2 = b.input("w2", (16, 40)), b.input("b2", (16,))
    h = b("relu", b("add", b("matmul", x, b("permute", w1, perm=(1, 0))), b1))
    y = b("add", b("matmul", h, b("permute", w2, perm=(1, 0))), b2)
    g = b.finish(y)
    xs = [rand((20, 24)), rand((40, 24)), rand((40,)), rand((16, 40)), rand((16,))]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 2
    assert [k.kind for k in low.kernels] == ["matmul", "matmul"]
    hh = np.maximum(f64(xs[0]) @ f64(xs[1]).T + f64(xs[2]), 0)
    assert_close(out, hh @ f64(xs[3]).T + f64(xs[4]), F32, scale=matmul_tol(40))


def test_matmul_backward_shapes_use_the_template():
    # The vjp of a @ b: g @ b^T and a^T @ g — transposes are index math, two template kernels.
    b = Builder()
    a, w, gr = b.input("a", (2, 17, 20)), b.input("w", (20, 19)), b.input("g", (2, 17, 19))
    ga = b("matmul", gr, b("permute", w, perm=(1, 0)))
    gw = b("reduce_sum", b("matmul", b("permute", a, perm=(0, 2, 1)), gr), dims=(0,), keepdim=False)
    g = b.finish(ga, gw)
    xs = [rand((2, 17, 20)), rand((20, 19)), rand((2, 17, 19))]
    low, (got_a, got_w) = run(g, xs)
    kinds = [k.kind for k in low.kernels]
    assert kinds.count("matmul") == 2
    assert_close(got_a, f64(xs[2]) @ f64(xs[1]).T, F32, scale=matmul_tol(19))
    assert_close(got_w, (f64(xs[0]).transpose(0, 2, 1) @ f64(xs[2])).sum(0), F32, scale=matmul_tol(34))


def test_computed_operand_is_materialized_once():
    # (x * 2) @ w: the scaled operand is stored by a pointwise kernel, then read as a plain buffer.
    b = Builder()
    x, w = b.input("x", (17, 20)), b.input("w", (20, 18))
    g = b.finish(b("matmul", b("mul", x, b.const(2.0)), w))
    xs = [rand((17, 20)), rand((20, 18))]
    low, (out,) = run(g, xs)
    assert [k.kind for k in low.kernels] == ["pointwise", "matmul"]
    assert "strided+strided" in low.kernels[1].source
    assert_close(out, 2 * f64(xs[0]) @ f64(xs[1]), F32, scale=matmul_tol(20))


@pytest.mark.parametrize("low_dtype", [F16, BF16])
def test_cast_of_an_input_operand_converts_as_it_loads(low_dtype):
    # autocast's cast of a float32 weight (transposed, as F.linear reads it): no kernel of its own,
    # the template loads float32 tiles and converts them in registers.
    b = Builder()
    x, w = b.input("x", (29, 40), low_dtype), b.input("w", (35, 40))
    wt = b("permute", b("cast", w, dtype=low_dtype), perm=(1, 0))
    g = b.finish(b("matmul", x, wt))
    xs = [rand((29, 40), low_dtype), rand((35, 40))]
    low, (out,) = run(g, xs)
    assert len(low.kernels) == 1
    assert f".to({'tl.float16' if low_dtype is F16 else 'tl.bfloat16'})" in low.kernels[0].source
    assert_close(out, f64(xs[0]) @ _converted(xs[1], low_dtype).T, low_dtype, scale=matmul_tol(40))


def _converted(w: np.ndarray, dtype) -> np.ndarray:
    """w as the kernel's `.to(dtype)` makes it: round to nearest even, except that Triton 3.6's
    interpreter truncates float32 -> bfloat16 (it ignores fp_downcast_rounding)."""
    if dtype is BF16 and default_target().interpreted:
        return (w.astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32).astype(np.float64)
    return w.astype(dtype.np).astype(np.float64)
