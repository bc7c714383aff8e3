"""Golden IR text for small programs: the final graph (after the default passes) of each, written by
hand from what the program means. Every graph is also verified and run against eager mode."""
from __future__ import annotations

import inspect

import numpy as np

import tritonflow as tf
from tritonflow.ir.verify import verify_graph

FILE = "test_core_golden_ir.py"


def line_of(fn, marker: str) -> str:
    lines, start = inspect.getsourcelines(fn)
    for offset, text in enumerate(lines):
        if marker in text:
            return f"{FILE}:{start + offset}"
    raise AssertionError(marker)


def row(body: str, where: str) -> str:
    """One node line: the text form pads the node to 48 columns, then `# file:line`."""
    return f"{'  ' + body:<48}  # {where}"


def final_graph(jitted, *args, **kwargs):
    jitted(*args, **kwargs)
    (entry,) = jitted.entries.values()
    verify_graph(entry.graph)
    return entry.graph


def mlp(x, w1, b1):
    return tf.relu(x @ w1 + b1)


def test_mlp_with_a_dynamic_batch():
    f = tf.jit(mlp, dynamic=True)
    x, w1, b1 = tf.randn(8, 784), tf.randn(784, 128), tf.randn(128)
    graph = final_graph(f, x, w1, b1)
    at = line_of(mlp, "tf.relu(")
    assert str(graph) == (
        "graph mlp(%x: f32[s0,784], %w1: f32[784,128], %b1: f32[128]) {\n"
        f"  %0: f32[s0,128] = matmul %x, %w1                # {at}\n"
        f"  %1: f32[s0,128] = add %0, %b1                   # {at}\n"
        f"  %2: f32[s0,128] = relu %1                       # {at}\n"
        "  return %2\n"
        "}")
    # one compile serves other batch sizes
    for n in (3, 5):
        xn = tf.randn(n, 784)
        np.testing.assert_array_equal(f(xn, w1, b1).numpy(), mlp(xn, w1, b1).numpy())
    assert f.cache_info().misses == 1


def scaled_sum(x, y):
    return (x * 2.0 + y).sum(dim=0)  # scaled_sum line


def test_weak_scalar_and_reduction():
    graph = final_graph(tf.jit(scaled_sum), tf.ones(3, 4), tf.ones(4))
    at = line_of(scaled_sum, "scaled_sum line")
    assert str(graph) == "\n".join([
        "graph scaled_sum(%x: f32[3,4], %y: f32[4]) {",
        row("%0: f32[] = constant 2.0", at),          # the Python float, weak: float32 like x
        row("%1: f32[3,4] = mul %x, %0", at),
        row("%2: f32[3,4] = add %1, %y", at),          # y broadcasts over the rows
        row("%3: f32[4] = reduce_sum[dims=(0,), keepdim=False] %2", at),
        "  return %3",
        "}"])


def strided(x, i):
    left = x[1:, ::2]  # rows 1.., every other column
    return left * i[::2]  # promote int32 to float16


def test_slices_and_promotion():
    x = tf.ones(4, 6, dtype=tf.float16)
    i = tf.arange(6, dtype=tf.int32)
    graph = final_graph(tf.jit(strided), x, i)
    a, b = line_of(strided, "rows 1.."), line_of(strided, "promote int32")
    assert str(graph) == "\n".join([
        "graph strided(%x: f16[4,6], %i: i32[6]) {",
        row("%0: f16[3,3] = slice[start=(1, 0), step=(1, 2), shape=(3, 3)] %x", a),
        row("%1: i32[3] = slice[start=(0,), step=(2,), shape=(3,)] %i", b),
        row("%2: f16[3] = cast[dtype=float16] %1", b),   # int32 with float16: the float wins
        row("%3: f16[3,3] = mul %0, %2", b),
        "  return %3",
        "}"])
    np.testing.assert_array_equal(tf.jit(strided)(x, i).numpy(), strided(x, i).numpy())


def views_and_noise(pair, *, scale):
    x, y = pair
    flat = (x.T.T * 1.0).reshape(2, 6).reshape(12)  # collapses to one reshape
    return flat + tf.rand(12) * scale, y  # noise line


def test_simplified_views_random_inputs_and_names():
    pair = (tf.ones(3, 4), tf.zeros(2))
    graph = final_graph(tf.jit(views_and_noise), pair, scale=tf.tensor(0.5))
    a, b = line_of(views_and_noise, "collapses"), line_of(views_and_noise, "noise line")
    # x.T.T and * 1.0 vanish, two reshapes become one; the random draw reads the seed and the
    # offset inputs directly (its "+ 0" offset for the first draw vanished too).
    assert str(graph) == "\n".join([
        "graph views_and_noise(%pair_0: f32[3,4], %pair_1: f32[2], %scale: f32[], "
        "%rng_seed: i64[], %rng_offset: i64[]) {",
        row("%0: f32[12] = reshape[shape=(12,)] %pair_0", a),
        row("%1: f32[12] = philox_uniform[shape=(12,), lane=0] %rng_seed, %rng_offset", b),
        row("%2: f32[12] = mul %1, %scale", b),
        row("%3: f32[12] = add %0, %2", b),
        "  return %3, %pair_1",
        "}"])
