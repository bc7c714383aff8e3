"""Regressions the differential fuzzer (tritonflow.fuzz) and the core suites found in the lowering.

Each test names the bug it pins and runs the jitted function on the triton backend (Triton's
interpreter on CPU) against an independent NumPy reference computed in float64 / int64.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf


def _jit(fn):
    return tf.jit(fn, backend="triton")


@pytest.mark.parametrize("shape,dim", [((1, 1), 0), ((1,), 0), ((1, 1, 1), 2), ((1, 4), 0), ((4, 1), 1)])
def test_cumsum_over_size_one_dims(shape, dim):
    # Every dim of size 1 made the store offset a constant: a scalar pointer took a block value.
    x = (np.arange(int(np.prod(shape))) + 1.5).reshape(shape).astype(np.float32)
    got = _jit(lambda a: tf.cumsum(a, dim))(tf.tensor(x)).numpy()
    np.testing.assert_array_equal(got, np.cumsum(x.astype(np.float64), dim).astype(np.float32))


@pytest.mark.parametrize("offset", [2**32 - 3, 2**32 + 9, 2**33 + 5])
@pytest.mark.parametrize("draw", ["rand", "randn"])
def test_jitted_random_past_2_to_32_equals_eager(offset, draw):
    # philox_uniform cast the 64-bit counter to uint32, dropping the high word the NumPy Philox
    # (and Triton's randint4x with an int64 offset) puts in counter word 1.
    from tritonflow import philox
    make = getattr(tf, draw)
    gen = philox.default_generator
    saved = gen.get_state()
    try:
        gen.manual_seed(123)
        gen.offset = offset
        eager = make(7, 5).numpy()
        gen.manual_seed(123)
        gen.offset = offset
        jitted = _jit(lambda x: make(7, 5) + x)(tf.zeros(7, 5)).numpy()
    finally:
        gen.set_state(saved)
    assert np.array_equal(eager, jitted), f"{int((eager != jitted).sum())} of 35 values differ"


def _lower_and_run(graph, arrays):
    from tritonflow import kernels
    from kernel_helpers import to_numpy, to_torch
    low = kernels.lower(graph)
    return low, [to_numpy(o) for o in low([to_torch(a) for a in arrays], {})]


@pytest.mark.parametrize("names", [("out0", "a"), ("out1", "buf2"), ("const1", "out0"), ("a.b", "a_b"),
                                   ("a_b", "a.b"), ("in_a", "a")])
def test_input_names_never_collide_with_kernel_buffers(names):
    # Graph inputs were passed unprefixed: a parameter named `out0` gave the kernel two `out0_ptr`
    # arguments (a SyntaxError), and `a.b` / `a_b` both sanitized to `a_b_ptr`.
    from kernel_helpers import Builder
    b = Builder()
    x, y = b.input(names[0], (2, 3)), b.input(names[1], (3, 2))
    s = b("reduce_sum", b("mul", x, b("permute", y, perm=(1, 0))), dims=(1,), keepdim=True)
    g = b.finish(b("add", b("mul", b("expand", s, shape=(2, 3)), x), b.const(1.0)), s, x)
    xs = np.arange(6.0).reshape(2, 3).astype(np.float32) - 2
    ys = np.arange(6.0).reshape(3, 2).astype(np.float32) * 0.5
    low, outs = _lower_and_run(g, [xs, ys])
    S = (xs.astype(np.float64) * ys.T).sum(1, keepdims=True)
    np.testing.assert_allclose(outs[0], S * xs + 1, rtol=1e-6)
    np.testing.assert_allclose(outs[1], S, rtol=1e-6)
    np.testing.assert_array_equal(outs[2], xs)
    for k in low.kernels:
        header = k.source.split("@triton.jit\ndef ", 1)[1].split("):", 1)[0]
        params = [p.strip() for p in header.split("(", 1)[1].split(",") if p.strip()]
        assert len(params) == len(set(params)), k.source
        assert all(p.startswith(("in_", "out", "buf", "const")) for p in params if p.endswith("_ptr")), params


def test_jitted_parameter_named_like_an_output_buffer():
    def f(out0, out1):
        return out1 * out0.sum(1, keepdim=True), out0.T + 1

    x = np.arange(6.0).reshape(2, 3).astype(np.float32)
    got = _jit(f)(tf.tensor(x), tf.tensor(x))
    X = x.astype(np.float64)
    np.testing.assert_allclose(got[0].numpy(), X * X.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(got[1].numpy(), X.T + 1, rtol=1e-6)


@pytest.mark.parametrize("source", ["bool", "int8", "int32", "int64", "float64"])
def test_cast_to_bfloat16_from_non_float32(source):
    # Found by the fuzzer: `(x > 0).to(bfloat16) * x` was 0. A direct `.to(tl.bfloat16)` from an
    # integer (or float64) reinterprets the bits under Triton's interpreter; casts go through float32.
    from tritonflow import dtypes as D
    values = np.asarray([0, 1, -1, 2.5, -3, 100, 127, -128, 0.5, 256, 3], np.float64)
    x = tf.tensor(values).to(D.as_dtype(source))
    got = _jit(lambda a: a.to(tf.bfloat16) * 2)(x).to(tf.float64).numpy()
    want = np.asarray(x.numpy()).astype(np.float64) * 2  # every value here is exact in bfloat16
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["cat_dim0", "cat_dim1_then_sum", "cat_then_broadcast_add"])
def test_cat_of_only_empty_pieces(name):
    # Found by the fuzzer: tf.cat([x[..., 1::3], ...]) of a size-1 dim asserted in code generation.
    fns = {
        "cat_dim0": lambda a: tf.cat([a[..., 1::3], a[..., 1::3] * 2], 0),
        "cat_dim1_then_sum": lambda a: tf.cat([a[:, 1:], a[:, 2:] * 2], 1).sum(1) + a[:, 0],
        "cat_then_broadcast_add": lambda a: tf.cat([a[:, 1:], a[:, 1:]], 1) + a[:, :1],
    }
    x = np.asarray([[3.0], [-1.5]], np.float32)
    if name == "cat_dim0":
        x = x[0]
    want = tf.jit(fns[name], backend="numpy")(tf.tensor(x)).numpy()
    got = _jit(fns[name])(tf.tensor(x)).numpy()
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", ["narrow", "split", "chunk", "unbind", "index_select", "gather", "take_along_dim"])
def test_ops_that_index_a_dim_reject_0d_tensors_clearly(op):
    # Found by the fuzzer's eager pass: these raised a bare IndexError (`x.shape[d]` of a 0-d tensor).
    x = tf.tensor(3.0)
    calls = {"narrow": lambda: tf.narrow(x, 0, 0, 1), "split": lambda: tf.split(x, 1, 0),
             "chunk": lambda: tf.chunk(x, 2, 0), "unbind": lambda: tf.unbind(x, -1),
             "index_select": lambda: tf.index_select(x, 0, tf.tensor([0])),
             "gather": lambda: tf.gather(x, 0, tf.tensor(0)),
             "take_along_dim": lambda: tf.take_along_dim(x, tf.tensor(0), 0)}
    with pytest.raises(tf.ShapeError, match=rf"{op}: needs a tensor with at least 1 dim, got a 0-d tensor"):
        calls[op]()


@pytest.mark.parametrize("call", ["unbind", "chunk", "split"])
def test_split_family_on_a_dynamic_dim_is_unsupported_not_a_type_error(call):
    # Found by fuzzing with dynamic=True: `[size] * (s0 // size)` raised a bare TypeError.
    fn = {"unbind": lambda a: tf.unbind(a, 0)[0], "chunk": lambda a: tf.chunk(a, 2, 0)[-1],
          "split": lambda a: tf.split(a, [1, 1], 0)[0]}[call]
    with pytest.raises(tf.UnsupportedError, match="has a dynamic size"):
        tf.jit(fn, dynamic=True, backend="numpy")(tf.tensor(np.ones((2, 3), np.float32)))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1, 1)])
@pytest.mark.parametrize("draw", ["rand_like", "dropout"])
def test_random_one_element_tensor(shape, draw):
    # Found by the fuzzer: with one element the counter was `tl.full([1], <loaded offset block>)`,
    # which Triton rejects ("Cannot splat a block tensor").
    fn = {"rand_like": lambda a: tf.rand_like(a) * a, "dropout": lambda a: tf.nn.functional.dropout(a, 0.25)}[draw]
    x = tf.tensor(np.full(shape, 1.5, np.float32))
    tf.manual_seed(5)
    want = tf.jit(fn, backend="numpy")(x).numpy()
    tf.manual_seed(5)
    got = _jit(fn)(x).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["numpy", "triton"])
def test_jitted_empty_random_draw(backend):
    # Found by the fuzzer: rand_like of an empty slice added seed/offset graph inputs but drew no
    # counters, so the call passed none ("graph takes 3 inputs, got 1").
    x = tf.tensor(np.ones((2, 1), np.float32))
    fn = tf.jit(lambda a: (tf.rand_like(a[..., 1:]) * 2, tf.rand_like(a) + a), backend=backend)
    tf.manual_seed(3)
    empty, full = fn(x)
    tf.manual_seed(3)
    eager = tf.rand(0), tf.rand(2, 1) + x
    assert empty.shape == (2, 0)
    np.testing.assert_array_equal(full.numpy(), eager[1].numpy())


@pytest.mark.parametrize("index", ["zeros_like", "expanded_0d"])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_scatter_add_with_one_target_for_every_element(index, dtype):
    # Found by the fuzzer: a constant (or 0-d) index made the atomic_add pointer a scalar while
    # the value and mask were blocks ("cannot reshape array of size 128 into shape (1,)").
    x = (np.arange(81) % 5 - 2).reshape(9, 9).astype(dtype)  # big enough that zeros_like stays a `full` node
    if index == "zeros_like":
        fn = lambda a: tf.scatter_add(a.flatten(), -1, tf.zeros_like(a.flatten(), dtype=tf.int64), a.flatten())
    else:
        fn = lambda a, i: tf.scatter_add(a, 1, i.expand(9, 9), a)
    args = [tf.tensor(x)] + ([] if index == "zeros_like" else [tf.tensor(np.asarray(2, np.int64))])
    want = np.zeros_like(x.astype(np.int64 if dtype == "int8" else np.float64))
    if index == "zeros_like":
        want = x.ravel().astype(want.dtype)
        want[0] += x.sum(dtype=want.dtype)
    else:
        want = x.astype(want.dtype)
        want[:, 2] += x.sum(1, dtype=want.dtype)
    got = _jit(fn)(*args).numpy()
    np.testing.assert_allclose(got.astype(np.float64), want.astype(x.dtype).astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 2, 1, 1), (3, 1), (1, 1)])
def test_take_along_a_size_one_argmax(shape):
    # Found by the fuzzer: argmax over a size-1 dim folds to the literal 0, and the gather then
    # loaded through a scalar pointer under a block mask.
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal((1, 2)).astype(np.float32)  # read only through the gathered dim

    def fn(a, b):
        return tf.take_along_dim(b + a, tf.argmax(a, -1, keepdim=True), -1)

    want = np.take_along_axis(y.astype(np.float64) + x, np.argmax(x, -1)[..., None], -1)
    got = _jit(fn)(tf.tensor(x), tf.tensor(y)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["int64", "float32", "bool"])
def test_reduction_epilogue_stores_a_one_element_load(dtype):
    # Found by the fuzzer ("Cannot broadcast, rank mismatch: ['1'], [1, 1]"): gathering along a
    # size-1 dim at an argmax joins the argmax's reduction kernel, whose epilogue stored a value
    # loaded at a constant offset (a [1] block) with tl.broadcast_to(..., [XBLOCK, 1]).
    x1 = np.asarray([[3]]).astype(dtype)
    x2 = np.asarray([[1], [-2]], np.int64)

    def fn(a, b):
        v0 = tf.take_along_dim(a, tf.argmax(b, -1, keepdim=True), -1)
        return tf.take_along_dim(v0, tf.argmax(b, -2, keepdim=True), -2)

    got = _jit(fn)(tf.tensor(x1), tf.tensor(x2)).numpy()
    np.testing.assert_array_equal(got, x1)


@pytest.mark.parametrize("case", ["identity", "double_transpose", "same_twice", "view_and_value", "0d_view"])
def test_graph_returning_its_input_through_a_view(case):
    # A graph output that simplifies to an input got a copy kernel whose pointer took the output's
    # name next to the input's (`out0_ptr` twice: the kernel module failed to load).
    fns = {"identity": lambda a: a, "double_transpose": lambda a: a.T.T, "same_twice": lambda a: (a.T.T, a),
           "view_and_value": lambda a: (a.reshape(6).reshape(2, 3), a * 2, a.T.contiguous()),
           "0d_view": lambda a: a.sum().reshape(1).reshape(())}
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    arg = tf.tensor(x)
    got = _jit(fns[case])(arg)
    want = fns[case](tf.tensor(x))
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    np.testing.assert_array_equal(arg.numpy(), x)  # the argument is never written


@pytest.mark.parametrize("norm", ["layer_norm", "rms_norm", "centered"])
def test_row_normalization_of_an_empty_row(norm):
    # Found by the fuzzer: layer_norm of x[..., 1::3] with x (2, 1) — an output of shape (2, 0) made
    # the store offset `rindex` only (the zero-size dim zeroed the row stride), a [1, RBLOCK]
    # pointer under an [XBLOCK, RBLOCK] mask.
    F = tf.nn.functional
    fn = {"layer_norm": lambda a: F.layer_norm(a[..., 1::3], (0,)),
          "rms_norm": lambda a: F.rms_norm(a[..., 1:], (0,), eps=1e-5),
          "centered": lambda a: a[..., 1:] - a[..., 1:].sum(-1, keepdim=True)}[norm]
    x = np.asarray([[0.5], [-1.0]], np.float32)
    got = _jit(fn)(tf.tensor(x)).numpy()
    assert got.shape == (2, 0)


SPECIALS = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -3.0, 1.5]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_pow_and_log1p_special_values_follow_numpy(dtype):
    # IEEE/C99 cases NumPy defines: pow(1, nan) = 1, pow(x, 0) = 1, pow(-inf, 0.5) = inf,
    # pow(-1, +-inf) = 1, pow(-0.0, -3) = -inf; log1p(inf) = inf, log1p(-1) = -inf.
    from tritonflow import dtypes as D
    dt = D.as_dtype(dtype)
    a, b = np.meshgrid(np.asarray(SPECIALS), np.asarray(SPECIALS), indexing="ij")
    got = _jit(lambda x, y: x ** y)(tf.tensor(a).to(dt), tf.tensor(b).to(dt)).to(tf.float64).numpy()
    x = np.asarray(SPECIALS + [-1.0, -1.5, 3.0])
    got_log = _jit(lambda v: tf.log1p(v))(tf.tensor(x).to(dt)).to(tf.float64).numpy()
    rtol = {"float16": 1e-3, "bfloat16": 1e-2}.get(dtype, 1e-6)
    with np.errstate(all="ignore"):
        for g, w in ((got, np.power(a, b)), (got_log, np.log1p(x))):
            assert np.array_equal(np.isnan(g), np.isnan(w)), "NaN positions differ"
            finite = ~np.isnan(w)
            assert np.array_equal(np.isinf(g[finite]), np.isinf(w[finite])), "infinities differ"
            zero = finite & (w == 0)
            assert np.array_equal(np.signbit(g[zero]), np.signbit(w[zero])), "signs of zeros differ"
            np.testing.assert_allclose(g[finite], w[finite], rtol=rtol)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int32"])
def test_scatter_add_of_a_broadcast_one_element_source(dtype):
    # Found by the fuzzer (wrong values): every lane added the same loaded element, passed as a
    # tl.broadcast_to view; Triton's interpreter read the lanes past the first from wrong memory.
    def fn(a):
        v = a.expand(2, *a.shape).transpose(0, -1)  # (1, 1, 2), every element a[0, 0]
        return tf.scatter_add(v, -1, tf.zeros_like(v, dtype=tf.int64), v)

    x = np.asarray([[-1.75]]).astype(dtype)
    got = _jit(fn)(tf.tensor(x)).numpy()
    a = x.astype(np.float64)[0, 0]
    np.testing.assert_array_equal(got.astype(np.float64), np.asarray([[[3 * a, a]]]))
