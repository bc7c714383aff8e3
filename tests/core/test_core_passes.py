"""Each pass on its own: constant folding, algebraic simplification, CSE, DCE.

Every rewritten graph is verified and run by the interpreter next to the original on the same
inputs: a pass may change the graph's shape, never its values.
"""
from __future__ import annotations

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import dtypes as D
from tritonflow.interpreter import run_graph
from tritonflow.ir.graph import Graph
from tritonflow.ir.types import TensorType
from tritonflow.ir.verify import verify_graph
from tritonflow.passes import cse, dce, run_passes
from tritonflow.passes.fold import FOLD_LIMIT, fold_constants
from tritonflow.passes.simplify import simplify
from tritonflow.tracer.trace import trace


def traced(fn, *args):
    jf = tf.jit(fn)
    key, leaves = jf.key_of(args, {})
    return trace(fn, args, {}, leaves, key[1], fn.__name__).graph


def ops(graph: Graph) -> list:
    return [n.op for n in graph.nodes]


def same_values(before: Graph, after: Graph, *arrays) -> None:
    verify_graph(after)
    want = run_graph(before, list(arrays))
    got = run_graph(after, list(arrays))
    assert len(want) == len(got)
    for w, g in zip(want, got):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_array_equal(g, w)


X = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5


# ---------------------------------------------------------------- simplify

@pytest.mark.parametrize("body", [
    lambda x: x * 1.0, lambda x: 1.0 * x, lambda x: x + 0.0, lambda x: 0.0 + x, lambda x: x - 0.0,
    lambda x: x / 1.0, lambda x: -(-x), lambda x: (x * 1.0 + 0.0) / 1.0,
], ids=["x*1", "1*x", "x+0", "0+x", "x-0", "x/1", "neg-neg", "chain"])
def test_identities_vanish(body):
    def f(x):
        return body(x)
    g = traced(f, tf.from_numpy(X))
    s = dce(simplify(g))
    assert ops(s) == [], s
    assert s.outputs == [s.inputs[0]]
    same_values(g, s, X)


def test_identity_that_broadcasts_is_kept():
    def f(x):
        return x * tf.ones(2, 3, 4)
    g = fold_constants(traced(f, tf.from_numpy(X)))
    s = dce(simplify(g))
    assert "mul" in ops(s)  # x * ones(2, 3, 4) has shape (2, 3, 4): not x
    same_values(g, s, X)


def test_non_identity_constants_are_kept():
    def f(x):
        return (x * 2.0 + 1.0) - 0.5
    g = traced(f, tf.from_numpy(X))
    assert ops(dce(simplify(g))) == ops(dce(g))


def test_integer_and_bool_identities():
    def f(x, b):
        return x * 1 + 0, b * True
    xi, xb = np.arange(6, dtype=np.int32), np.array([True, False])
    g = traced(f, tf.from_numpy(xi), tf.from_numpy(xb))
    s = dce(simplify(g))
    assert ops(s) == []
    same_values(g, s, xi, xb)


def _hand_graph(build):
    g = Graph("hand")
    x = g.add_input("x", TensorType((3, 4), D.float32))
    g.outputs = [build(g, x)]
    verify_graph(g)
    return g


def test_cast_to_same_dtype_and_double_logical_not():
    g = _hand_graph(lambda g, x: g.add("cast", [x], {"dtype": D.float32}, TensorType((3, 4), D.float32)))
    assert ops(dce(simplify(g))) == []
    g = Graph("nots")
    b = g.add_input("b", TensorType((2,), D.bool_))
    n1 = g.add("logical_not", [b], {}, TensorType((2,), D.bool_))
    g.outputs = [g.add("logical_not", [n1], {}, TensorType((2,), D.bool_))]
    assert ops(dce(simplify(g))) == []
    # logical_not twice on a float is a cast to bool, not the identity
    g = Graph("float_nots")
    x = g.add_input("x", TensorType((2,), D.float32))
    n1 = g.add("logical_not", [x], {}, TensorType((2,), D.bool_))
    g.outputs = [g.add("logical_not", [n1], {}, TensorType((2,), D.bool_))]
    assert ops(dce(simplify(g))) == ["logical_not", "logical_not"]


def test_reshape_chains_collapse():
    def f(x):
        return x.reshape(2, 6).reshape(12).reshape(6, 2).reshape(4, 3)
    g = traced(f, tf.from_numpy(X))
    s = dce(simplify(g))
    assert ops(s) == ["reshape"] and s.nodes[0].inputs[0] is s.inputs[0] and s.nodes[0].type.shape == (4, 3)
    same_values(g, s, X)

    def back(x):
        return x.reshape(12).reshape(2, 6).reshape(3, 4) + 1.0
    g = traced(back, tf.from_numpy(X))
    assert ops(dce(simplify(g))) == ["constant", "add"]


def test_reshape_to_own_shape_and_expand_to_own_shape():
    g = _hand_graph(lambda g, x: g.add("reshape", [x], {"shape": (3, 4)}, TensorType((3, 4), D.float32)))
    assert ops(dce(simplify(g))) == []
    g = _hand_graph(lambda g, x: g.add("expand", [x], {"shape": (3, 4)}, TensorType((3, 4), D.float32)))
    assert ops(dce(simplify(g))) == []


def test_permute_chains_compose():
    x3 = np.arange(24, dtype=np.float32).reshape(2, 3, 4)

    def f(x):
        return x.permute(2, 0, 1).permute(0, 2, 1).transpose(0, 1)
    g = traced(f, tf.from_numpy(x3))
    s = dce(simplify(g))
    assert ops(s) == ["permute"]
    # x.permute(2,0,1) has dims (d2,d0,d1); .permute(0,2,1) -> (d2,d1,d0); .transpose(0,1) -> (d1,d2,d0)
    assert s.nodes[0].attrs["perm"] == (1, 2, 0)
    same_values(g, s, x3)

    def identity(x):
        return x.permute(1, 2, 0).permute(2, 0, 1)
    g = traced(identity, tf.from_numpy(x3))
    assert ops(dce(simplify(g))) == []

    def twice_t(x):
        return x.T.T * 2.0
    g = traced(twice_t, tf.from_numpy(x3))
    assert ops(dce(simplify(g))) == ["constant", "mul"]


def test_simplify_keeps_outputs_and_locations():
    def f(x):
        y = x.reshape(4, 3)
        return y.reshape(2, 6), y
    g = traced(f, tf.from_numpy(X))
    s = dce(simplify(g))
    assert [n.type.shape for n in s.outputs] == [(2, 6), (4, 3)]
    assert all(n.loc is not None and n.loc.short().startswith("test_core_passes.py:") for n in s.nodes)
    same_values(g, s, X)


def test_gather_of_a_row_shifted_value_gathers_first():
    # cross_entropy: log_softmax = x - logsumexp, then one class per row. The subtraction moves
    # after the gather, so the other classes' log-probabilities are never computed.
    import tritonflow.nn.functional as F
    logits = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    target = np.array([0, 8, 3, -100, 5, 1], dtype=np.int64)
    g = traced(lambda x, t: F.cross_entropy(x, t), tf.from_numpy(logits), tf.from_numpy(target))
    s = dce(simplify(g))
    (gathered,) = [n for n in s.nodes if n.op == "gather"]
    assert gathered.inputs[0].op == "sub" and gathered.inputs[0].type.shape == (6, 9)
    (shifted,) = [n for n in s.nodes if n.op == "sub" and gathered in n.inputs]
    assert shifted.type.shape == (6, 1)
    assert sum(n.type.shape == (6, 9) for n in s.nodes) < sum(n.type.shape == (6, 9) for n in g.nodes)
    verify_graph(s)
    (got,) = run_graph(s, [logits, target])
    z = logits.astype(np.float64)
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    keep = target != -100
    want = -log_p[np.arange(6)[keep], target[keep]].mean()
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("body", [
    lambda x, i: (y := x - x.amax(1, keepdim=True)).gather(1, i) + y.sum(),  # read twice
    lambda x, i: (x - x.amax(0, keepdim=True)).gather(1, i),   # varies along the gathered dim
    lambda x, i: (x * 2.0).gather(1, i),                          # a 0-d operand: left to the fusers
])
def test_gather_rule_keeps_what_it_cannot_move(body):
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    i = np.array([[0, 4], [1, 1], [3, 2], [4, 0]], dtype=np.int64)
    g = traced(body, tf.from_numpy(x), tf.from_numpy(i))
    s = dce(simplify(g))

    def gathered_from(graph):
        return [(n.inputs[0].op, n.inputs[0].type.shape) for n in graph.nodes if n.op == "gather"]
    assert gathered_from(s) == gathered_from(g) and gathered_from(g)[0][0] in ("sub", "mul"), gathered_from(s)
    same_values(g, s, x, i)


# ---------------------------------------------------------------- constant folding

def test_fold_small_constant_expressions():
    def f(x):
        scale = tf.arange(4, dtype=tf.float32) * 2.0 + 1.0
        return x * scale
    g = traced(f, tf.from_numpy(X))
    assert ops(g)[0] == "iota" and ops(g).count("mul") >= 2
    s = dce(fold_constants(g))
    assert ops(s) == ["constant", "mul"]
    np.testing.assert_array_equal(s.nodes[0].attrs["value"], np.array([1.0, 3.0, 5.0, 7.0], np.float32))
    same_values(g, s, X)


def test_fold_leaves_big_tensors_and_random_ops():
    def big(x):
        return x + tf.ones(FOLD_LIMIT + 1).sum()
    g = traced(big, tf.from_numpy(X))
    assert "full" in ops(dce(fold_constants(g)))

    def random(x):
        return x + tf.rand(3, 4)
    g = traced(random, tf.from_numpy(X))
    assert "philox_uniform" in ops(dce(fold_constants(g)))


def test_folded_constants_are_read_only_and_outputs_are_fresh():
    @tf.jit
    def f(x):
        return x + 1.0, tf.arange(3)
    _, a = f(tf.from_numpy(X))
    arr = a.numpy()
    np.testing.assert_array_equal(arr, [0, 1, 2])
    _, b = f(tf.from_numpy(X))
    np.testing.assert_array_equal(b.numpy(), [0, 1, 2])


# ---------------------------------------------------------------- cse, dce, the pipeline

def test_cse_merges_equal_nodes_only():
    def f(x):
        a = tf.exp(x) + tf.exp(x)
        b = x.sum(0) * x.sum(1).sum()
        return a, b
    g = traced(f, tf.from_numpy(X))
    s = dce(cse(g))
    assert ops(s).count("exp") == 1
    assert ops(s).count("reduce_sum") == 3  # different dims: not merged
    same_values(g, s, X)


def test_dce_drops_unused_work():
    def f(x):
        unused = tf.exp(x) * 3.0  # noqa: F841
        return x + 1.0
    g = traced(f, tf.from_numpy(X))
    s = dce(g)
    assert "exp" not in ops(s) and ops(s) == ["constant", "add"]


def test_pipeline_verifies_and_records(monkeypatch):
    def f(x):
        return (x.reshape(12).reshape(3, 4) * 1.0 + tf.exp(x) + tf.exp(x)).T.T
    g = traced(f, tf.from_numpy(X))
    record = []
    out = run_passes(g, record=record, verify=True)
    assert [name for name, _ in record] == ["trace", "fold", "simplify", "attention", "cse", "dce"]
    assert ops(out) == ["exp", "add", "add"]
    same_values(g, out, X)


def test_pipeline_log(monkeypatch, capsys):
    monkeypatch.setenv("TRITONFLOW_LOG", "ir")

    def f(x):
        return x * 1.0
    run_passes(traced(f, tf.from_numpy(X)))
    err = capsys.readouterr().err
    for name in ("trace", "fold", "simplify", "cse", "dce"):
        assert f"IR after {name}:" in err
