"""The backend registry and the one graph evaluator.

The registry loads a backend's module by name on first use (nothing imports it before); a backend
registered at run time serves jit like the built-in ones; missing packages give a clear error.
The evaluator drops every intermediate after its last reader, keeps inputs, constants and
outputs, and shows each node to an observer.
"""
from __future__ import annotations

import gc
import sys
import textwrap
import weakref

import numpy as np
import pytest

import tritonflow as tf
from tritonflow import backends, interpreter, numpy_backend
from tritonflow.errors import UnsupportedError
from tritonflow.ir.graph import Graph
from tritonflow.ir.types import TensorType
from tritonflow.ops.registry import OPS
from tritonflow.tracer.trace import trace


def traced(fn, *args) -> Graph:
    jf = tf.jit(fn)
    key, leaves = jf.key_of(args, {})
    return trace(fn, args, {}, leaves, key[1], fn.__name__).graph


X = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 4


# ---------------------------------------------------------------- the evaluator

def test_evaluator_frees_each_intermediate_after_its_last_reader():
    def f(x):
        a = tf.exp(x)        # read only by b
        b = a * 2.0          # read by c and by the last node
        c = b + 1.0
        return c * b
    graph = traced(f, tf.from_numpy(X))
    names = {id(n): n.op for n in graph.nodes}
    alive_at: dict = {}
    refs: dict = {}

    def observe(node, inputs, attrs, value):
        refs[id(node)] = weakref.ref(value)
        gc.collect()
        alive_at[len(alive_at)] = {names[k] for k, r in refs.items() if r() is not None}

    (out,) = interpreter.Evaluator(graph)([np.array(X)], observe=observe)
    steps = [n.op for n in graph.nodes if n.op != "constant"]
    assert steps == ["exp", "mul", "add", "mul"]
    # While the third node runs, exp's value (last read by the second) is gone.
    assert alive_at[2] == {"mul", "add"}
    x64 = X.astype(np.float64)
    b = np.exp(x64) * 2.0
    np.testing.assert_allclose(out, (b + 1.0) * b, rtol=4e-6)


def test_evaluator_keeps_inputs_constants_and_outputs_and_copies_constant_outputs():
    graph = Graph("g")
    x = graph.add_input("x", TensorType((3,), tf.float32))
    const = graph.add_constant(np.array([1.0, 2.0, 3.0], np.float32), TensorType((3,), tf.float32))
    y = graph.add("mul", [x, const], {}, TensorType((3,), tf.float32))
    graph.outputs = [y, const, x, y]
    arrays = [np.array([2.0, 2.0, 2.0], np.float32)]
    evaluator = interpreter.Evaluator(graph)
    for _ in range(2):  # a second run finds the plan's template intact
        got_y, got_c, got_x, again = evaluator(arrays)
        np.testing.assert_array_equal(got_y, [2.0, 4.0, 6.0])
        np.testing.assert_array_equal(got_c, [1.0, 2.0, 3.0])
        assert got_x is arrays[0] and again is got_y
        assert got_c is not const.attrs["value"]  # the caller may write into it: never the graph's own
        got_c[0] = 99.0
    with pytest.raises(UnsupportedError, match="takes 1 inputs, got 2"):
        evaluator(arrays * 2)


def test_observer_sees_resolved_symbolic_attributes():
    @tf.jit(dynamic=True)
    def f(x):
        return tf.reshape(x, (x.shape[0], 2, 2)).sum(dim=2)
    a = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.testing.assert_array_equal(f(tf.from_numpy(a)).numpy(), a.reshape(6, 2, 2).sum(axis=2))
    graph = next(iter(f.entries.values())).graph
    seen = []
    interpreter.Evaluator(graph)([a], observe=lambda node, inputs, attrs, value: seen.append((node.op, attrs)))
    reshapes = [attrs for op, attrs in seen if op == "reshape"]
    assert reshapes and all(all(isinstance(d, int) for d in attrs["shape"]) for attrs in reshapes)
    assert (6, 2, 2) in [tuple(attrs["shape"]) for attrs in reshapes]


# ---------------------------------------------------------------- the registry

def test_builtin_backends_and_unknown_names():
    assert backends.get("numpy") is numpy_backend.BACKEND
    assert set(backends.names()) >= {"numpy", "triton"}
    with pytest.raises(UnsupportedError, match="unknown backend 'nope'"):
        tf.jit(lambda x: x, backend="nope")


COUNTING_BACKEND = textwrap.dedent('''
    """A test backend: the interpreter, counting what it compiles."""
    from tritonflow.numpy_backend import NumpyRunner

    class Counting:
        name = "counting"
        compiled = []

        def compile(self, graph, *, mode="default"):
            self.compiled.append((graph.name, mode))
            return NumpyRunner(graph)

        def run_op(self, op, arrays, attrs, out_type):
            raise AssertionError("not used by jit")

        def cache_stats(self):
            return {"compiled": len(self.compiled)}

    BACKEND = Counting()
''')


def test_a_registered_backend_loads_on_first_use_and_serves_jit(tmp_path, monkeypatch):
    module = "tritonflow_test_counting_backend"
    (tmp_path / f"{module}.py").write_text(COUNTING_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(backends, "_loaded", dict(backends._loaded))
    monkeypatch.setitem(backends._SPECS, "counting", backends.BackendSpec(module))
    assert module not in sys.modules
    fn = tf.jit(lambda x: tf.exp(x).sum(dim=1), backend="counting", mode="max-autotune")
    assert module not in sys.modules  # naming the backend is not loading it
    got = fn(tf.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, np.exp(X.astype(np.float64)).sum(axis=1), rtol=4e-6)
    backend = backends.get("counting")
    assert module in sys.modules and backend.compiled == [("lambda", "max-autotune")]


def test_missing_packages_are_named_before_anything_is_imported(monkeypatch):
    spec = backends.BackendSpec("tritonflow_no_such_module", packages=("tritonflow_no_such_package",),
                                install_hint="pip install something")
    monkeypatch.setattr(backends, "_loaded", dict(backends._loaded))
    monkeypatch.setitem(backends._SPECS, "missing", spec)
    with pytest.raises(UnsupportedError, match=r"backend='missing' needs tritonflow_no_such_package installed: "
                                               r"pip install something \(missing: tritonflow_no_such_package\)"):
        backends.get("missing")
    assert "missing" not in backends._loaded


def test_numpy_backend_runs_one_op_like_dispatch():
    a = np.array([1.0, -2.0], np.float32)
    out = backends.get("numpy").run_op(OPS["abs"], [a], {}, TensorType((2,), tf.float32))
    np.testing.assert_array_equal(out, [1.0, 2.0])
    assert backends.get("numpy").cache_stats() == {}
