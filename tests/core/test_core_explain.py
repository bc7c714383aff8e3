"""tritonflow.explain: guards, IR after each pass, kernels, recompiles, suggestions, DOT."""
from __future__ import annotations

import re

import tritonflow as tf
import tritonflow.nn.functional as F
from tritonflow.ir.graph import format_graph


def block(x, w, b, g):
    h = F.gelu(x @ w + b, approximate="tanh")
    return F.layer_norm(h, (h.shape[-1],), weight=g)


def _args():
    return tf.randn(4, 8), tf.randn(8, 16) * 0.1, tf.zeros(16), tf.ones(16)


def test_issue_example_on_the_numpy_backend():
    jitted = tf.jit(block)
    args = _args()
    jitted(*args)
    e = tf.explain(jitted, *args)
    text = str(e)
    assert jitted.cache_info() == (0, 1, 1)  # explain reused the cached entry: nothing compiled
    # guards, in words, with the parameter names
    assert e.guards[0].startswith("tensor argument 0 (%x): shape (4, 8), dtype float32")
    assert all(isinstance(g, str) for g in e.guards) and len(e.guards) == 4
    for guard in e.guards:
        assert guard in text
    # the IR after the trace and after each pass, the final graph as .graph
    names = [name for name, _ in e.passes]
    assert names[0] == "trace" and names[-1] == "dce" and {"fold", "simplify", "cse"} <= set(names)
    assert e.passes[0][1].startswith("graph block(%x: f32[4,8], %w: f32[8,16], %b: f32[16], %g: f32[16])")
    (entry,) = jitted.entries.values()
    assert e.graph == format_graph(entry.graph) and e.graph in text
    assert "--- after cse:" in text  # cse merges the two 16.0 constants of layer_norm's two means
    assert e.kernels == [] and "Kernels: none" in text
    assert e.recompiles == [] and "Recompiles: none" in text


def test_plain_function_and_kwargs():
    def scaled(x, *, factor):
        return x * factor

    e = tf.explain(scaled, tf.ones(3), factor=2.0)
    assert "static argument equal to 2.0" in "\n".join(e.guards)
    assert "graph scaled(%x: f32[3])" in e.graph


def test_compiled_module_explains_the_graph_it_runs():
    # explain(compile(model)) reports the compiled module's own cache entry: parameters are graph
    # inputs (not captured constants), and a recompile of the module shows up.
    model = tf.nn.Sequential(tf.nn.Linear(4, 3), tf.nn.ReLU())
    compiled = tf.compile(model)
    compiled(tf.ones(2, 4))
    compiled(tf.ones(5, 4))
    e = tf.explain(compiled, tf.ones(5, 4))
    assert compiled.cache_info() == (0, 2, 2)  # explain reused the entry the call made
    assert e.name == "Sequential" and e.graph.startswith("graph Sequential(")
    assert len(e.final_graph.inputs) == 3  # weight, bias, x
    assert not any(n.attrs.get("captured") for n in e.final_graph.inputs)
    assert e.recompiles and "shape changed from (2, 4) to (5, 4)" in e.recompiles[0]
    report = tf.debug.verify(compiled, tf.ones(5, 4))
    assert report.ok and compiled.cache_info().misses == 2


def test_recompiles_for_shapes_suggest_dynamic():
    jitted = tf.jit(block)
    for n in (4, 5, 6):
        args = (tf.randn(n, 8),) + _args()[1:]
        jitted(*args)
    e = tf.explain(jitted, *args)
    assert len(e.recompiles) == 2
    assert e.recompiles[0] == "tensor argument 0 (%x): shape changed from (4, 8) to (5, 8)"
    assert "dynamic=True" in e.suggestion and "Suggestion:" in str(e)
    assert tf.explain(tf.jit(block, dynamic=True), *args).suggestion == ""


def test_recompiles_for_static_values_suggest_a_tensor():
    @tf.jit
    def scale(x, k):
        return x * k

    x = tf.ones(3)
    for k in (1.5, 2.5, 3.5):
        scale(x, k)
    e = tf.explain(scale, x, 3.5)
    assert e.recompiles[-1] == "static argument 0 changed from 2.5 to 3.5"
    assert "as a tensor" in e.suggestion


def test_dot_clusters_by_user_line_without_kernels():
    def two_lines(x):
        y = tf.exp(x) * 2.0  # line one
        return y.sum(-1)  # line two
    dot = tf.explain(two_lines, tf.ones(2, 3)).to_dot()
    assert dot.startswith('digraph "two_lines" {') and dot.rstrip().endswith("}")
    clusters = re.findall(r'subgraph cluster_\d+ \{\n    label="([^"]+)"', dot)
    assert len(clusters) == 2 and all(c.startswith("test_core_explain.py:") for c in clusters)
    assert "in_x -> n0;" in dot and re.search(r"n\d+ -> out0;", dot)


def test_triton_backend_lists_kernels_and_clusters(backend):
    def f(x, w):
        h = tf.relu(x @ w) * 2.0  # matmul line
        return F.softmax(h, -1) + 1.0  # softmax line

    x, w = tf.randn(8, 16), tf.randn(16, 32)
    e = tf.explain(tf.jit(f, backend=backend), x, w)
    if backend == "numpy":
        assert e.kernels == []
        return
    assert len(e.kernels) >= 1
    text = str(e)
    for kernel in e.kernels:
        assert "@triton.jit" in kernel.source and kernel.name in text
        assert kernel.node_indices and all(line.startswith("test_core_explain.py:") for line in kernel.user_lines)
    covered = sorted(i for k in e.kernels for i in k.node_indices)
    computed = [i for i, n in enumerate(e.final_graph.nodes) if n.op != "constant"]
    assert set(computed) <= set(covered)  # every computing node sits in some kernel
    dot = e.to_dot()
    labels = re.findall(r'subgraph cluster_\d+ \{\n    label="kernel ([^"]+)"', dot)
    assert labels == [k.name for k in e.kernels if k.node_indices]
