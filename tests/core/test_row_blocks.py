"""The numpy backend's row-blocked evaluation (tritonflow/row_blocks.py) against the plain evaluator
and against float64 NumPy.

Each case jits a function on the numpy backend, takes its forward (and backward) graphs, and runs
them both ways with blocks of a few rows, so every block boundary (a last block shorter than the
others included: N is never a multiple of the block) is exercised on small arrays. Row-wise values
must be bit-identical to the whole-array run (the same NumPy calls on fewer rows); an accumulated
sum over the rows may differ by the order of its additions only, and a matrix product by the kernel BLAS picks for the block's
shape.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow.interpreter import Evaluator
from tritonflow.row_blocks import RowBlockedPlan


def _graphs(fn, *args) -> list:
    """The forward graph of `fn` jitted on these arguments, and its backward graph when an
    argument wants gradients (the backward of the sum of the first output, weighted)."""
    jitted = tf.jit(fn, backend="numpy")
    out = jitted(*args)
    out = out[0] if isinstance(out, tuple) else out
    if out.requires_grad:
        weights = tf.tensor(np.random.default_rng(3).standard_normal(out.shape).astype(np.float32))
        (out * weights).sum().backward()
    (entry,) = jitted.entries.values()
    graphs = [entry.graph]
    if out.requires_grad:
        graphs.append(entry.backward_graph)
    return graphs


def _inputs(graph, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    arrays = []
    for node in graph.inputs:
        dtype, shape = node.type.dtype.np, node.type.shape
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(0, 7, shape).astype(dtype))
    return arrays


def _check(fn, *args, block_rows: int = 3, exact: bool = True) -> RowBlockedPlan:
    """Run every graph of `fn` blocked and whole; returns the last plan (for the caller's checks)."""
    plan = None
    for graph in _graphs(fn, *args):
        plan = RowBlockedPlan.build(graph, min_row_elements=0, block_rows=block_rows)
        assert plan is not None, f"no row-blocked plan for {graph.name}:\n{graph}"
        assert plan.rows == block_rows and plan.row, graph
        arrays = _inputs(graph)
        want = Evaluator(graph)(arrays)
        got = plan(arrays)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            if exact:
                np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    return plan


def _t(*shape, grad=False, seed=0):
    x = tf.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    x.requires_grad = grad
    return x


def test_softmax_and_logsoftmax_rows_are_identical():
    plan = _check(lambda x: F.softmax(x, dim=-1) + F.log_softmax(x, dim=-1), _t(37, 16))
    assert not plan.acc and not plan.post


def test_layer_norm_forward_and_backward():
    x, w, b = _t(37, 16, grad=True), _t(16, grad=True, seed=1), _t(16, grad=True, seed=2)
    # The backward sums the weight's and bias's gradients over the rows: accumulated block by block.
    plan = _check(lambda x, w, b: F.layer_norm(x, (16,), w, b, 1e-5), x, w, b, exact=False)
    assert plan.acc


def test_cross_entropy_forward_and_backward_with_ignored_targets():
    logits = _t(37, 11, grad=True)
    target = tf.tensor(np.where(np.arange(37) % 5 == 0, -100, np.arange(37) % 11).astype(np.int64))
    plan = _check(lambda x, t: F.cross_entropy(x, t), logits, target, exact=False)
    assert plan is not None


def test_creations_alike_in_every_row_are_made_a_row_at_a_time():
    # An iota along the classes and a fill are the same in every row: "row" steps made once and
    # broadcast. An iota along the rows is not: it is made whole before the blocks.
    def fn(x):
        classes = tf.iota((37, 6), 1).to(tf.float32)
        rows = tf.iota((37, 6), 0).to(tf.float32)
        return x * classes + tf.full((37, 6), 2.0) * 3 - rows
    (graph,) = _graphs(fn, _t(37, 6))
    plan = RowBlockedPlan.build(graph, min_row_elements=0, block_rows=4)
    made = {(s.node.op, s.node.attrs.get("dim")): s.same_rows for s in plan.row if s.node.op in ("iota", "full")}
    assert made == {("iota", 1): True, ("full", None): True}, made
    assert [s.node.attrs["dim"] for s in plan.pre if s.node.op == "iota"] == [0]
    _check(fn, _t(37, 6), block_rows=4)
    x = _t(37, 6).numpy().astype(np.float64)
    want = x * np.arange(6) + 6 - np.arange(37)[:, None]
    np.testing.assert_allclose(plan([_t(37, 6).numpy()])[0], want, rtol=1e-6, atol=1e-5)


def test_attention_over_the_batch_axis():
    q, k, v = (_t(5, 2, 8, 4, grad=True, seed=s) for s in range(3))
    _check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True) * 2 + q, q, k, v, block_rows=2,
           exact=False)


def test_matmul_gelu_chain_and_views():
    x, w = _t(37, 8), _t(8, 37, seed=1)     # w's leading dim is N too: read whole, never a block of it

    def fn(x, w):
        h = F.gelu(x @ w, approximate="tanh")
        h = tf.cat([h, h * 2], dim=1).reshape(37, 2, 37).permute(0, 2, 1)
        return h[:, 1:30:2, :].cumsum(1), h.sum(dim=(1, 2))
    plan = _check(fn, x, w, exact=False)
    # x @ w multiplies whole inputs: one BLAS call before the blocks, which then read its rows.
    assert [s.node.op for s in plan.pre] == ["matmul"] and "matmul" not in [s.node.op for s in plan.row]


def test_a_product_of_block_values_takes_blocks_of_at_least_64_rows():
    x, w = _t(200, 32), _t(32, 16, seed=1)
    (graph,) = _graphs(lambda x, w: F.gelu(x * 2 + 1) @ w + 1, x, w)
    plan = RowBlockedPlan.build(graph, block_elements=64, min_row_elements=0)
    assert "matmul" in [s.node.op for s in plan.row] and plan.rows == 64
    got = plan([x.numpy(), w.numpy()])[0]
    np.testing.assert_allclose(got, Evaluator(graph)([x.numpy(), w.numpy()])[0], rtol=1e-5, atol=1e-5)


def test_reductions_over_the_rows_accumulate():
    x = _t(37, 6)
    ints = tf.tensor(np.arange(37 * 6).reshape(37, 6) % 7)

    def fn(x, i):
        y = x * 2 - 1
        return y.sum(0), y.amax(0), y.amin(dim=(0, 1)), (y * y).sum(), (i * 3).sum(0), (y > 0).sum(0)
    plan = _check(fn, x, ints, exact=False)
    assert len(plan.acc) >= 5


def test_a_value_after_a_row_reduction_reads_the_whole_rows():
    # x - mean over the rows: the mean is accumulated, the subtraction runs after the blocks on
    # the whole x (a batch-norm pattern).
    plan = _check(lambda x: (x - x.mean(0)) * (x.exp() * 2 + 1), _t(37, 6), exact=False)
    assert plan.acc and plan.post


def test_row_blocked_values_against_float64():
    x = _t(41, 9)
    plan = RowBlockedPlan.build(_graphs(lambda x: F.softmax(x * 3, dim=1), x)[0], min_row_elements=0, block_rows=4)
    got = plan([x.numpy()])[0]
    z = x.numpy().astype(np.float64) * 3
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fn", [
    lambda x: x.sum(),                           # one node: nothing to keep in cache
    lambda x: (x.T * 2).exp(),                   # the transpose moves the rows
    lambda x: x.reshape(-1) * 3 + 1,             # the rows merge
])
def test_graphs_without_row_blocks_run_whole(fn):
    (graph,) = _graphs(fn, _t(37, 6))
    assert RowBlockedPlan.build(graph, min_row_elements=0, block_rows=3) is None


def test_small_graphs_and_jit_default():
    # Small values run whole; a 4096x512 float32 softmax (8 MB) runs blocked by default and matches
    # float64.
    (small,) = _graphs(lambda x: F.softmax(x, dim=-1), _t(64, 64))
    assert RowBlockedPlan.build(small) is None
    x = _t(4096, 512)
    fn = tf.jit(lambda x: F.softmax(x, dim=-1), backend="numpy")
    got = fn(x).numpy()
    (entry,) = fn.entries.values()
    assert entry.runner.blocked is not None and entry.runner.blocked.rows < 4096
    z = x.numpy().astype(np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-8)


def test_a_bad_index_in_a_blocked_run_names_the_op_the_whole_sizes_and_the_line():
    # An out-of-range target in a cross-entropy large enough to run blocked: the same error as a
    # whole-array run (the op, the size of the gathered dim, the user's line), not a block's.
    fn = tf.jit(lambda x, t: F.cross_entropy(x, t), backend="numpy")
    logits = _t(4096, 1024)
    with pytest.raises(tf.TritonflowError, match=r"gather: index out of range for dim 1 of size 1024") as err:
        fn(logits, tf.tensor(np.full(4096, 5000, dtype=np.int64)))
    assert "test_row_blocks.py:" in str(err.value)
    (entry,) = fn.entries.values()
    assert entry.runner.blocked is not None
